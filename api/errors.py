"""Error answers that can always be sent: a validation error echoes the input it refused, and an input can
be what JSON cannot carry back (``NaN``, a lone UTF-16 surrogate) — the answer must still be a 4xx."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


def _sendable(value: Any) -> Any:
    """``value`` with what JSON cannot encode replaced by its text: non-finite numbers, lone surrogates."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_sendable(key): _sendable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_sendable(item) for item in value]
    return value


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = _sendable(jsonable_encoder(exc.errors()))
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _not_unicode(_request: Request, _exc: Exception) -> JSONResponse:
    # A lone surrogate (``"\\ud800"`` in JSON) passes as a Python string but no store can encode it.
    return JSONResponse(
        {"detail": [{"type": "unicode", "loc": ["body"], "msg": "text must be valid Unicode (no lone surrogates)"}]},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def install_error_answers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(UnicodeEncodeError, _not_unicode)
