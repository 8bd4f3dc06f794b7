"""``uegan serve`` put together: the models, the store, the worker and the HTTP server.

:func:`serve` runs until Ctrl-C or SIGTERM (both reach it as ``KeyboardInterrupt``, see
``uegan.cli.sigterm_as_interrupt``) and removes the temporary folder on the way out, whatever
stopped it. :class:`ServeApp` is the same server for a program or a test that runs it in a
thread (``with ServeApp(config, models) as app: ... app.url``).
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from http.server import ThreadingHTTPServer

from uegan.errors import UserError
from uegan.io.listing import IMAGE_EXTENSIONS
from uegan.metrics import DIGITS, FULL_REFERENCE, LOWER_IS_BETTER
from uegan.apps.serve.config import ServeConfig, exposure_warning
from uegan.apps.serve.server import UPLOAD_HEADER, Handler, static_files
from uegan.apps.serve.store import Store
from uegan.apps.serve.worker import Model, Worker, load_models

log = logging.getLogger(__name__)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a slow client never keeps the program from stopping
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: "ServeApp") -> None:
        self.app = app
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)


class ServeApp:
    """The page's server: bound on construction, serving after :meth:`start` (in a thread) or
    :meth:`serve_forever` (in the caller's), everything removed by :meth:`close`."""

    def __init__(self, config: ServeConfig, models: list[Model]) -> None:
        self.config = config
        self.models = models
        self.static = static_files()
        try:  # bound first: a port in use leaves nothing behind
            self.httpd = _Server((config.host, config.port), self)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise UserError(f"--port {config.port} is in use on {config.host}: choose "
                                f"another (--port 0 takes any free one)") from None
            raise UserError(f"--host {config.host} --port {config.port}: cannot listen there "
                            f"({error.strerror or error})") from None
        self.store = Store()
        self.worker = Worker(self.store, models, config)
        self.worker.start()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        host = self.config.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{self.port}/"

    def info(self) -> dict:
        """What the page needs to know: the checkpoints, the limits, the metrics."""
        return {
            "models": [{"index": index, "label": model.label, "variant": model.variant}
                       for index, model in enumerate(self.models)],
            "max_upload_bytes": self.config.max_upload_bytes,
            "max_pixels": self.config.max_pixels,
            "extensions": sorted(IMAGE_EXTENSIONS),
            "metrics": [{"name": name, "digits": DIGITS[name],
                         "lower_is_better": name in LOWER_IS_BETTER} for name in FULL_REFERENCE],
            "upload_header": UPLOAD_HEADER,
        }

    def start(self) -> "ServeApp":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="uegan-serve-http",
                                        daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def close(self) -> None:
        """Stop serving, stop the worker, remove the temporary folder."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
        self.httpd.server_close()
        self.worker.stop()
        self.store.remove()

    def __enter__(self) -> "ServeApp":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def serve(config: ServeConfig) -> None:
    """Load the checkpoints and serve the page until interrupted; always clean up."""
    config = config.check()
    models = load_models(config)
    for model in models:
        log.info("checkpoint %s: variant %s", model.label, model.variant or "unknown")
    app = ServeApp(config, models)
    try:
        warning = exposure_warning(config.host)
        if warning:
            log.warning("%s", warning)
        log.info("uploads and results go to %s (removed on exit)", app.store.root)
        log.info("open %s in a browser (Ctrl-C stops)", app.url)
        app.serve_forever()
    finally:
        app.close()
