"""The RSA keys of the providers' SHA256withRSA signatures (PKCS#1 v1.5, base64): a merchant's private
key signs houqin's requests, the provider's public key (a PEM public key or an X.509 certificate)
verifies what the provider sends. A key that does not load names the file and the setting."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


class KeyFileError(ValueError):
    """A key file that cannot be read or is not the key expected."""

    pass


def _key_text(path: Path, setting: str) -> bytes:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{setting}: cannot read {path}: {exc.strerror}") from None
    return text.removeprefix(b"\xef\xbb\xbf").strip()  # editors on Windows save the key with a BOM


def _der(text: bytes) -> bytes:
    """The key under the bare base64 Alipay's console and key tool hand out (PKCS#1 for non-Java use,
    PKCS#8 for Java, the public key as SubjectPublicKeyInfo), possibly wrapped across lines."""
    try:
        return base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("neither PEM nor base64") from None


def load_private_key(path: Path, setting: str) -> rsa.RSAPrivateKey:
    """A PEM key (PKCS#1 or PKCS#8) or the bare base64 of either."""
    text = _key_text(path, setting)
    try:
        key = (
            serialization.load_pem_private_key(text, password=None)
            if text.startswith(b"-----BEGIN")
            else serialization.load_der_private_key(_der(text), password=None)
        )
    except (ValueError, TypeError) as exc:
        raise KeyFileError(
            f"{setting}: {path} is not a private key, in PEM or as the bare base64 of a PKCS#1 or PKCS#8 key ({exc})"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFileError(f"{setting}: {path} is not an RSA key")
    return key


def load_public_key(path: Path, setting: str) -> rsa.RSAPublicKey:
    """A PEM public key (SubjectPublicKeyInfo or PKCS#1), an X.509 certificate, or the bare base64 of any."""
    text = _key_text(path, setting)
    try:
        key: object
        if text.startswith(b"-----BEGIN"):
            key = (
                x509.load_pem_x509_certificate(text).public_key()
                if b"CERTIFICATE" in text
                else serialization.load_pem_public_key(text)
            )
        else:
            der = _der(text)
            try:
                key = serialization.load_der_public_key(der)
            except ValueError:
                key = x509.load_der_x509_certificate(der).public_key()
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{setting}: {path} is not a public key or certificate ({exc})") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFileError(f"{setting}: {path} is not an RSA key")
    return key


def sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def verified(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
