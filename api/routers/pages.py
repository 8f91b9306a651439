"""The web pages: a small static front end (HTML, CSS, JavaScript modules) served by houqin itself, so a
campus network cut off from the internet still has them. The pages call the same API with the same
tokens, so a page can show nothing its user could not read through the API. Public: a page without a
token shows the sign-in form."""

from __future__ import annotations

import os
from pathlib import Path
from string import Template

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB = Path(__file__).resolve().parent.parent / "web"

# Everything comes from houqin: no CDN, no inline script or style an injected string could use; photos are
# shown from blob: URLs made of what the API returned.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}

router = APIRouter(tags=["pages"], include_in_schema=False)


# One shell for every page: its title and its script are all that differ.
_SHELL = Template((WEB / "page.html").read_text(encoding="utf-8"))
_TITLES = {"index": "登录", "student": "我的宿舍", "worker": "维修工单", "staff": "管理"}
_SECTIONS = set(_TITLES) - {"index"}


def _page(name: str) -> HTMLResponse:
    html = _SHELL.substitute(title=_TITLES[name], script=name)
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@router.get("/")
async def root() -> Response:
    return RedirectResponse("/app/", status_code=307)


@router.get("/app")
@router.get("/app/")
async def sign_in_page() -> HTMLResponse:
    return _page("index")


# A page's own path names what it shows (a room, an order); its script reads it and asks the API, which
# decides whether this user may see it.
@router.get("/app/{section}")
@router.get("/app/{section}/{rest:path}")
async def section_page(section: str) -> HTMLResponse:
    if section not in _SECTIONS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no page {section!r}")
    return _page(section)


class WebAssets(StaticFiles):
    """The pages' scripts, styles and icons, with the same headers as the pages."""

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(SECURITY_HEADERS)
        return response


def web_assets() -> WebAssets:
    return WebAssets(directory=WEB / "static")
