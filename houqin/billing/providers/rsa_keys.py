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


def _pem(path: Path, setting: str) -> bytes:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{setting}: cannot read {path}: {exc.strerror}") from None
    if b"-----BEGIN" in text:
        return text
    # Alipay's console hands out the bare base64 of the key, without PEM armour.
    body = b"".join(text.split())
    kind = b"PRIVATE KEY" if len(body) > 1000 else b"PUBLIC KEY"
    return b"-----BEGIN " + kind + b"-----\n" + body + b"\n-----END " + kind + b"-----\n"


def load_private_key(path: Path, setting: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(_pem(path, setting), password=None)
    except ValueError as exc:
        raise KeyFileError(f"{setting}: {path} is not a PEM private key ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFileError(f"{setting}: {path} is not an RSA key")
    return key


def load_public_key(path: Path, setting: str) -> rsa.RSAPublicKey:
    pem = _pem(path, setting)
    try:
        key: object = (
            x509.load_pem_x509_certificate(pem).public_key()
            if b"CERTIFICATE" in pem
            else serialization.load_pem_public_key(pem)
        )
    except ValueError as exc:
        raise KeyFileError(f"{setting}: {path} is not a PEM public key or certificate ({exc})") from None
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
