"""The HTTP side of ``uegan serve``: Python's threading HTTP server, one static page, a JSON API.

Uploads are the raw bytes of one file per request (``fetch`` with the file as its body), so
there is no multipart parser to trust; their size is checked from ``Content-Length`` before a
byte is read, and they are streamed to the temporary folder. Every identifier in a request (the
session, a photo, a checkpoint's index) is looked up among those the server made; anything else
is a 404, so no value from a client can name a file. Requests whose ``Host`` is not this machine
are refused while listening on loopback (a web site cannot reach the page through DNS
rebinding), and uploads need a header that browsers never add across sites on their own.

Routes: ``GET /`` (the page), ``/page.js``, ``/page.css``; ``GET /api/info``; ``POST
/api/session``; ``POST /api/references?session=&name=``; ``POST
/api/photos?session=&name=&models=0,1[&reference=]``; ``GET /api/jobs?session=``; ``GET
/api/preview?session=&job=&image=input|<model>``; ``GET /api/download?session=&job=&model=``;
``GET /api/zip?session=``.
"""

from __future__ import annotations

import json
import logging
import shutil
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from uegan.apps.serve.archive import write_zip
from uegan.apps.serve.config import is_loopback
from uegan.apps.serve.store import Job, Session

log = logging.getLogger(__name__)

CHUNK = 1 << 20
UPLOAD_HEADER = "X-Uegan-Upload"  # a custom header: a cross-site form cannot send it
STATIC = {"/": ("page.html", "text/html; charset=utf-8"),
          "/page.js": ("page.js", "text/javascript; charset=utf-8"),
          "/page.css": ("page.css", "text/css; charset=utf-8")}
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "tiff": "image/tiff",
                 "webp": "image/webp", "bmp": "image/bmp"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def static_files() -> dict[str, bytes]:
    """The page's three files, read once from the package."""
    folder = resources.files("uegan.apps.serve")
    return {route: (folder / name).read_bytes() for route, (name, _) in STATIC.items()}


def human_size(size: int) -> str:
    """``2.8 GB``, ``256 MB``, ``49 KB``: a size as the page shows it (one decimal at most)."""
    if size >= 2**20:
        value, unit = (size / 2**30, "GB") if size >= 2**30 else (size / 2**20, "MB")
        return f"{value:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size / 2**10:.0f} KB" if size >= 2**10 else f"{size} bytes"


class Refused(Exception):
    """A request answered with an error status and a one-line message for the page."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    """One request; ``self.server.app`` is the :class:`uegan.apps.serve.app.ServeApp`."""

    server_version = "uegan-serve"
    sys_version = ""
    timeout = 120  # seconds a client may stay silent mid-request

    # -- plumbing ------------------------------------------------------------------------------

    def log_message(self, format: str, *args) -> None:  # the library logs, never prints
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {**SECURITY_HEADERS, "Content-Type": content_type,
                            "Content-Length": str(len(body)), **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, value: object, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _file(self, path: Path, content_type: str, download: str | None = None) -> None:
        extra = {}
        if download is not None:
            extra["Content-Disposition"] = (f"attachment; filename=\"{download}\"; "
                                            f"filename*=UTF-8''{quote(download)}")
        self.send_response(HTTPStatus.OK)
        for name, value in {**SECURITY_HEADERS, "Content-Type": content_type,
                            "Content-Length": str(path.stat().st_size), **extra}.items():
            self.send_header(name, value)
        self.end_headers()
        with open(path, "rb") as handle:
            shutil.copyfileobj(handle, self.wfile, CHUNK)

    def _query(self) -> dict[str, str]:
        return {key: values[0] for key, values in
                parse_qs(urlsplit(self.path).query, keep_blank_values=True).items()}

    def _dispatch(self, routes: dict) -> None:
        try:
            self._check_host()
            route = routes.get(urlsplit(self.path).path)
            if route is None:
                raise Refused(HTTPStatus.NOT_FOUND, "no such page")
            route(self._query())
        except Refused as refusal:
            self.close_connection = True
            self._json({"error": str(refusal)}, refusal.status)
        except (BrokenPipeError, ConnectionResetError):
            log.debug("the client went away")

    def _check_host(self) -> None:
        app = self.server.app
        if not is_loopback(app.config.host):
            return
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        if not is_loopback(host):
            raise Refused(HTTPStatus.FORBIDDEN, f"this page answers requests for "
                                                f"{app.config.host} only, not for {host!r}")

    def _session(self, query: dict[str, str]) -> Session:
        session = self.server.app.store.session(query.get("session"))
        if session is None:
            raise Refused(HTTPStatus.NOT_FOUND, "unknown session: reload the page")
        return session

    def _job(self, session: Session, query: dict[str, str]) -> Job:
        with self.server.app.store.lock:
            job = session.jobs.get(query.get("job", ""))
        if job is None:
            raise Refused(HTTPStatus.NOT_FOUND, "unknown photo")
        return job

    def _model(self, text: str | None) -> int:
        count = len(self.server.app.models)
        if text is None or not text.isdecimal() or int(text) >= count:
            raise Refused(HTTPStatus.NOT_FOUND, f"unknown checkpoint {text!r}")
        return int(text)

    # -- GET -----------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch({**{route: self._static for route in STATIC},
                        "/api/info": self._info, "/api/jobs": self._jobs,
                        "/api/preview": self._preview, "/api/download": self._download,
                        "/api/zip": self._zip})

    def _static(self, _query: dict[str, str]) -> None:
        route = urlsplit(self.path).path
        self._send(HTTPStatus.OK, self.server.app.static[route], STATIC[route][1])

    def _info(self, _query: dict[str, str]) -> None:
        self._json(self.server.app.info())

    def _jobs(self, query: dict[str, str]) -> None:
        self._json({"jobs": self.server.app.store.snapshot(self._session(query))})

    def _preview(self, query: dict[str, str]) -> None:
        job = self._job(self._session(query), query)
        image = query.get("image")
        with self.server.app.store.lock:
            if image == "input":
                path = job.preview
            else:
                result = job.results.get(self._model(image))
                path = result.preview if result else None
        if path is None:
            raise Refused(HTTPStatus.NOT_FOUND, "not ready yet")
        self._file(path, "image/jpeg")

    def _download(self, query: dict[str, str]) -> None:
        job = self._job(self._session(query), query)
        with self.server.app.store.lock:
            result = job.results.get(self._model(query.get("model")))
        if result is None:
            raise Refused(HTTPStatus.NOT_FOUND, "not ready yet")
        self._file(result.file, CONTENT_TYPES[job.format], result.download)

    def _zip(self, query: dict[str, str]) -> None:
        session = self._session(query)
        archive = write_zip(session, self.server.app.store.lock)
        if archive is None:
            raise Refused(HTTPStatus.NOT_FOUND, "no result to download yet")
        try:
            self._file(archive, "application/zip", "uegan-results.zip")
        finally:
            archive.unlink(missing_ok=True)

    # -- POST ----------------------------------------------------------------------------------

    def do_POST(self) -> None:
        self._dispatch({"/api/session": self._new_session, "/api/references": self._reference,
                        "/api/photos": self._photo})

    def _new_session(self, _query: dict[str, str]) -> None:
        self._require_upload_header()
        self._json({"session": self.server.app.store.new_session().id})

    def _require_upload_header(self) -> None:
        if self.headers.get(UPLOAD_HEADER) != "1":
            raise Refused(HTTPStatus.FORBIDDEN, f"requests need the header {UPLOAD_HEADER}: 1")

    def _receive(self, target: Path, name: str) -> None:
        """The request's body into ``target``, refused before reading when too large."""
        self._require_upload_header()
        length = self.headers.get("Content-Length", "")
        if not length.isdecimal():
            raise Refused(HTTPStatus.LENGTH_REQUIRED, f"{name}: the upload has no length")
        size, limit = int(length), self.server.app.config.max_upload_bytes
        if size > limit:
            raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                          f"{name}: {human_size(size)} is over the upload limit of "
                          f"{human_size(limit)} (uegan serve --max-upload-mb)")
        if size == 0:
            raise Refused(HTTPStatus.BAD_REQUEST, f"{name}: empty file (0 bytes)")
        received = 0
        with open(target, "xb") as handle:
            while received < size:
                chunk = self.rfile.read(min(CHUNK, size - received))
                if not chunk:
                    break
                handle.write(chunk)
                received += len(chunk)
        if received < size:
            target.unlink(missing_ok=True)
            raise Refused(HTTPStatus.BAD_REQUEST, f"{name}: the upload stopped after "
                                                  f"{received:,} of {size:,} bytes")

    def _reference(self, query: dict[str, str]) -> None:
        app = self.server.app
        session = self._session(query)
        reference = app.store.new_reference(session, query.get("name", ""))
        self._receive(reference.file, reference.name)
        app.store.keep(session, reference)
        self._json({"reference": reference.id, "name": reference.name})

    def _photo(self, query: dict[str, str]) -> None:
        app = self.server.app
        session = self._session(query)
        models = tuple(dict.fromkeys(self._model(part) for part in
                                     (query.get("models") or "0").split(",")))
        reference = None
        if query.get("reference"):
            with app.store.lock:
                reference = session.references.get(query["reference"])
            if reference is None:
                raise Refused(HTTPStatus.NOT_FOUND, "unknown reference")
        job = app.store.new_job(session, query.get("name", ""), models, reference)
        self._receive(job.source, job.name)
        app.worker.submit(session, job)
        self._json({"job": job.id, "name": job.name})
