"""Sign-in: the OAuth2 password flow. Anyone may call it; only a right name and password get a token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import ContextDep, SessionDep, TokensDep
from api.schemas import TokenOut
from houqin.accounts import authenticate

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/token", response_model=TokenOut, summary="Sign in (public)")
async def sign_in(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    tokens: TokensDep,
    context: ContextDep,
) -> TokenOut:
    guard = context.sign_in_guard
    name = form.username.lower()
    address = request.client.host if request.client else "-"
    wait = guard.retry_after(name, address)
    if wait:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed sign-ins; try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    user = await authenticate(session, form.username, form.password)
    if user is None:
        guard.failed(name, address)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "wrong username or password", headers={"WWW-Authenticate": "Bearer"}
        )
    guard.succeeded(name, address)
    token = tokens.issue(user.id, user.role, user.token_version)
    return TokenOut(access_token=token, expires_in=int(tokens.ttl.total_seconds()))
