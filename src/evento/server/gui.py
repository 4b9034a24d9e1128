"""The GUI's built assets served by the server's HTTP app at ``/``, beside the API under ``/api``.

The GUI is a single-page app (``gui/``, built by ``make gui`` into ``evento/server/gui_dist``, which the wheel
carries). Its hashed files under ``/assets`` never change under a name, so browsers keep them for a year; every
other path that is not the API's or ``/metrics`` answers the app's ``index.html`` (never cached, so a new release
shows at the next load), which routes it in the browser: a deep link survives a reload. Without the built assets
the same paths answer a page saying how to build them, not an error.
"""

from __future__ import annotations

import gzip
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["GUI_DIST", "MISSING_PAGE", "GuiAssets", "mount_gui"]

#: Where ``make gui`` (``npm run build`` in ``gui/``) writes the built app.
GUI_DIST = Path(__file__).parent / "gui_dist"

#: Paths the GUI never answers: the API's and the metrics' own 404s stay theirs.
_NOT_GUI = ("api", "metrics")

#: Hashed assets: a new build writes new names, so a name's content never changes.
IMMUTABLE = "public, max-age=31536000, immutable"
#: ``index.html``: always asked again, so a new build is picked up at once.
NO_CACHE = "no-cache"

#: Everything the GUI loads comes from this server (no CDN, no inline script); the component kit sets inline
#: styles, and the API is on the same origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)

#: Types worth compressing (text); images and fonts are compressed already.
_COMPRESSIBLE = (".js", ".mjs", ".css", ".html", ".svg", ".json", ".map", ".txt")
#: Files smaller than this go as they are: gzip's header would outweigh the saving.
_MIN_GZIP_BYTES = 1024

MISSING_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Evento: the GUI was not built</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;line-height:1.5}
code{background:#8882;padding:.1rem .3rem;border-radius:.2rem}</style></head>
<body>
<h1>The GUI was not built</h1>
<p>This server has no built GUI assets (<code>evento/server/gui_dist</code> is empty). From a checkout of the
project, run <code>make gui</code> (it runs <code>npm ci &amp;&amp; npm run build</code> in <code>gui/</code>), then
reload this page. Wheels of a release carry the built GUI.</p>
<p>The REST API works without it: <a href="/api/docs">/api/docs</a>.</p>
</body>
</html>
"""


@dataclass(frozen=True)
class _Compressed:
    mtime_ns: int
    size: int
    body: bytes


class GuiAssets:
    """The built GUI in ``directory``: answers the app's paths (see the module's docstring).

    Compressed copies of the text assets are made on first request and kept (the files are few, small and
    immutable), so a browser on a slow link gets a fraction of the bytes without a build step for it."""

    def __init__(self, directory: Path = GUI_DIST) -> None:
        self.directory = directory.resolve()
        self._compressed: dict[Path, _Compressed] = {}

    @property
    def built(self) -> bool:
        """Whether the built app is there (its ``index.html``)."""
        return (self.directory / "index.html").is_file()

    def answers(self, scope: Scope) -> bool:
        """Whether a request no route of the app matched is the GUI's: a GET or HEAD outside the API."""
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return False
        return str(scope["path"]).lstrip("/").split("/", 1)[0] not in _NOT_GUI

    async def respond(self, request: Request) -> Response:
        """The answer to a GUI path: an asset, another file of the build, or the app's ``index.html``."""
        path = request.url.path.lstrip("/")
        if not self.built:
            return HTMLResponse(MISSING_PAGE, status_code=503, headers={"Cache-Control": NO_CACHE})
        file = self._file(path)
        if path.startswith("assets/"):
            if file is None:  # a chunk of another build: a 404, not index.html parsed as JavaScript
                raise HTTPException(404, f"no asset {request.url.path}: the GUI was rebuilt, reload the page")
            return self._asset(request, file, IMMUTABLE)
        if file is not None and file.name != "index.html":
            return self._asset(request, file, NO_CACHE)
        return self._index()

    def _file(self, path: str) -> Path | None:
        """The file ``path`` names inside the directory, if it names one (never outside it)."""
        if not path or "\x00" in path:
            return None
        candidate = (self.directory / path).resolve()
        if not candidate.is_relative_to(self.directory) or not candidate.is_file():
            return None
        return candidate

    def _index(self) -> Response:
        return FileResponse(
            self.directory / "index.html",
            media_type="text/html",
            headers={
                "Cache-Control": NO_CACHE,
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin",
            },
        )

    def _asset(self, request: Request, file: Path, cache_control: str) -> Response:
        headers = {"Cache-Control": cache_control, "X-Content-Type-Options": "nosniff", "Vary": "Accept-Encoding"}
        media_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if file.suffix in _COMPRESSIBLE and "gzip" in request.headers.get("accept-encoding", "").lower():
            body = self._gzipped(file)
            if body is not None:
                headers["Content-Encoding"] = "gzip"
                return Response(body, media_type=media_type, headers=headers)
        return FileResponse(file, media_type=media_type, headers=headers)

    def _gzipped(self, file: Path) -> bytes | None:
        stat = file.stat()
        if stat.st_size < _MIN_GZIP_BYTES:
            return None
        kept = self._compressed.get(file)
        if kept is None or (kept.mtime_ns, kept.size) != (stat.st_mtime_ns, stat.st_size):
            kept = _Compressed(stat.st_mtime_ns, stat.st_size, gzip.compress(file.read_bytes(), compresslevel=6))
            self._compressed[file] = kept
        return kept.body


def mount_gui(app: FastAPI, directory: Path = GUI_DIST) -> FastAPI:
    """Serve the GUI built in ``directory`` at ``/`` of ``app``.

    The GUI answers what no route of the app matched (the router's default), so the API keeps its own answers:
    a wrong method is still a 405, ``/api/bundle`` still redirects to ``/api/bundle/``, and an unknown ``/api``
    or ``/metrics`` path, or a method other than GET and HEAD, is still the API's 404 problem."""
    assets = GuiAssets(directory)
    fallback: ASGIApp = app.router.default

    async def default(scope: Scope, receive: Receive, send: Send) -> None:
        if not assets.answers(scope):
            await fallback(scope, receive, send)
            return
        response = await assets.respond(Request(scope, receive))
        await response(scope, receive, send)

    app.router.default = default
    app.state.gui = assets
    return app
