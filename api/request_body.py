"""Raw request bodies read with a bound: the bytes are counted as they arrive, so a client that sends a
gigabyte (or declares one) is refused at the bound instead of being held in memory first."""

from __future__ import annotations

from fastapi import HTTPException, Request, status


async def body_within(request: Request, limit: int, what: str) -> bytes:
    """The body, at most ``limit`` bytes; a 413 naming ``what`` and the bound otherwise."""
    too_large = HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"{what} is at most {_size(limit)}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 and limit % (1 << 20) == 0 else f"{limit >> 10} KiB"
