"""What one API application holds: the services it was given and the parts that are the API's own."""

from __future__ import annotations

from dataclasses import dataclass

from api.login_throttle import SignInGuard
from api.services import ApiServices
from api.tokens import TokenIssuer


@dataclass(frozen=True, slots=True)
class ApiContext:
    services: ApiServices
    tokens: TokenIssuer
    sign_in_guard: SignInGuard
