"""Error answers: one shape, as the OpenAPI schema declares it, and always sendable.

Every 4xx is ``{"detail": "<sentence>"}`` except a 422, which is always ``{"detail": [{"type", "loc",
"msg"}, ...]}`` — FastAPI's own shape for invalid input, also for the checks a route makes itself. A
validation error echoes the input it refused, and an input can be what JSON cannot carry back (``NaN``, a
lone UTF-16 surrogate) — the answer must still be a 4xx."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException


class ErrorOut(BaseModel):
    detail: str


class ProblemOut(BaseModel):
    type: str
    loc: list[str | int]
    msg: str


class ValidationErrorOut(BaseModel):
    detail: list[ProblemOut]


# Declared for every operation (FastAPI's ``responses=``): any 4xx is an ErrorOut, a 422 a list of problems.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorOut, "description": "Refused: the sentence says why"},
    422: {"model": ValidationErrorOut, "description": "The input is not valid: every problem, with where it is"},
}


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


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code != status.HTTP_422_UNPROCESSABLE_CONTENT:
        return await http_exception_handler(request, exc)
    # A route's own check ("to is before from") in the shape of FastAPI's validation errors.
    items = exc.detail if isinstance(exc.detail, list) else [exc.detail]
    problems = [item if isinstance(item, dict) else {"type": "value_error", "loc": [], "msg": str(item)}
                for item in items]  # fmt: skip
    return JSONResponse({"detail": _sendable(problems)}, exc.status_code, headers=exc.headers)


def install_error_answers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(UnicodeEncodeError, _not_unicode)
