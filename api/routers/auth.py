"""Sign-in: the OAuth2 password flow. Anyone may call it; only a right name and password get a token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import SessionDep, TokensDep
from api.schemas import TokenOut
from houqin.accounts import authenticate

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/token", response_model=TokenOut, summary="Sign in (public)")
async def sign_in(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep, tokens: TokensDep
) -> TokenOut:
    user = await authenticate(session, form.username, form.password)
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "wrong username or password", headers={"WWW-Authenticate": "Bearer"}
        )
    token = tokens.issue(user.id, user.role, user.token_version)
    return TokenOut(access_token=token, expires_in=int(tokens.ttl.total_seconds()))
