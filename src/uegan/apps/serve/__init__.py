"""``uegan serve``: a local web page to enhance photos, compare checkpoints and download results.

Built on Python's standard library only (``http.server``): one static page (``page.html``,
``page.js``, ``page.css``, shipped in this package, nothing from the network) and a small JSON
API. :mod:`.config` (options and limits), :mod:`.store` (sessions, jobs, the temporary folder),
:mod:`.worker` (enhancing through :class:`uegan.inference.Enhancer`), :mod:`.server` (HTTP),
:mod:`.archive` (the zip), :mod:`.app` (all together).
"""

from uegan.apps.serve.app import ServeApp, serve
from uegan.apps.serve.config import ServeConfig, exposure_warning, is_loopback
from uegan.apps.serve.worker import Model, load_models

__all__ = ["Model", "ServeApp", "ServeConfig", "exposure_warning", "is_loopback", "load_models",
           "serve"]
