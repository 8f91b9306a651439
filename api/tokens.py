"""Signed access tokens (JWT, HS256) for the OAuth2 password flow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

ALGORITHM = "HS256"
AUDIENCE = "houqin-api"


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    role: str
    version: int


class TokenIssuer:
    def __init__(self, secret: str, ttl: timedelta) -> None:
        if len(secret) < 32:
            raise ValueError("the JWT secret must be at least 32 characters")
        self._secret = secret
        self.ttl = ttl

    def issue(self, user_id: int, role: str, version: int, now: datetime | None = None) -> str:
        issued = now or datetime.now(UTC)
        payload = {
            "sub": str(user_id),
            "role": role,
            "ver": version,
            "aud": AUDIENCE,
            "iat": issued,
            "exp": issued + self.ttl,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def read(self, token: str) -> TokenClaims:
        """The claims of a valid, unexpired token; raises ``jwt.InvalidTokenError`` otherwise."""
        payload = jwt.decode(
            token,
            self._secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["sub", "exp", "iat", "aud"]},
        )
        try:
            return TokenClaims(int(payload["sub"]), str(payload["role"]), int(payload.get("ver", 0)))
        except (KeyError, TypeError, ValueError):
            raise jwt.InvalidTokenError("malformed claims") from None
