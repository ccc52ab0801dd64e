"""The single-page app's files, and the security headers every console response carries.

``/console/`` and any page route under it (a path whose last part has no dot, such as
``/console/calls/CA123``) get ``index.html``: the app routes in the browser. Other paths are
files from ``gateway/console/static/`` (the built assets, shipped in the wheel), never anything
outside that folder.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Final

from aiohttp import web

from gateway.console.auth import refusal

STATIC: Final = Path(str(resources.files("gateway.console").joinpath("static")))


def content_security_policy(connect: tuple[str, ...] = ()) -> str:
    """No inline script or style, nothing from elsewhere; ``connect`` adds origins the page
    may open sockets to (the Live API's, when it may talk to the model directly)."""
    return "; ".join([
        "default-src 'self'", "script-src 'self'", "style-src 'self'",
        "img-src 'self' data: blob:", "media-src 'self' blob:", "font-src 'self'",
        "worker-src 'self'", " ".join(["connect-src 'self'", *connect]),
        "object-src 'none'", "base-uri 'none'", "form-action 'self'",
        "frame-ancestors 'none'"])


def security_headers(connect: tuple[str, ...] = ()) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(connect),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
    }


class Pages:
    def __init__(self, folder: Path = STATIC) -> None:
        self.folder = folder

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{tail:.*}", self.no_api)
        app.router.add_get("/{tail:.*}", self.page)

    async def no_api(self, _request: web.Request) -> web.Response:
        raise refusal(web.HTTPNotFound, "no such API route")

    async def page(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        folder = self.folder.resolve()
        if tail:
            path = (folder / tail).resolve()
            if path.is_relative_to(folder) and path.is_file():
                # Built assets carry a hash in their names: they may be kept for long.
                cache = "public, max-age=31536000, immutable" if "assets/" in tail \
                    else "no-cache"
                return web.FileResponse(path, headers={"Cache-Control": cache})
            if "." in tail.rsplit("/", 1)[-1]:
                raise web.HTTPNotFound(text="not found\n")
        index = folder / "index.html"
        if not index.is_file():
            raise web.HTTPNotFound(text="the console's pages are not built\n")
        return web.FileResponse(index, headers={"Cache-Control": "no-cache"})
