"""Signing in to the API in tests: the shared password and a helper that returns the auth header."""

from __future__ import annotations

import httpx

PASSWORD = "a-long-password"


async def sign_in(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = await client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
