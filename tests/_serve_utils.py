"""What the tests of ``uegan serve`` share: small checkpoints and photos, a server in a thread,
and a plain HTTP client for its API."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import time
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import torch
from PIL import Image

from conftest import FIVEK_SAMPLE, load_golden
from uegan.apps.serve import ServeApp, ServeConfig, load_models

HEADER = {"X-Uegan-Upload": "1"}
ORIENTATION = 0x0112
ARTIST = 0x013B


def write_checkpoints(folder: Path) -> tuple[Path, Path]:
    """The published conv_dim-8 generator of the reference files, and a copy whose output layer's
    bias is moved (a second model whose results differ), as published ``.pth`` files."""
    state = load_golden("generator_forward.pt")["state_dict"]
    first, second = folder / "published.pth", folder / "shifted.pth"
    torch.save({"G_net": state}, first)
    shifted = dict(state)
    key = "dec5.1.main.1.bias"  # the last convolution, 8 -> 3 channels
    shifted[key] = state[key] + 0.25
    torch.save({"G_net": shifted}, second)
    return first, second


def sample_photo(name: str, size: tuple[int, int] = (96, 64), folder: str = "val/raw") -> Image.Image:
    """A FiveK sample photo made small (width, height), so that the tests stay quick."""
    with Image.open(FIVEK_SAMPLE / folder / name) as image:
        return image.convert("RGB").resize(size, Image.Resampling.LANCZOS)


def write_photos(folder: Path) -> dict[str, Path]:
    """A JPEG with EXIF (a portrait turned by its orientation tag), a PNG and its reference."""
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in (FIVEK_SAMPLE / "val/raw").iterdir())
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[ARTIST] = "uegan test"
    paths = {"jpeg": folder / "first.jpg", "png": folder / "second.png",
             "reference": folder / "references" / "second.png"}
    sample_photo(names[0]).save(paths["jpeg"], quality=92, exif=exif.tobytes())
    sample_photo(names[1]).save(paths["png"])
    paths["reference"].parent.mkdir()
    sample_photo(names[1], folder="val/label").save(paths["reference"])
    return paths


@contextlib.contextmanager
def serving(checkpoints, **options):
    config = ServeConfig(checkpoints=tuple(checkpoints), port=0, **options).check()
    with ServeApp(config, load_models(config)) as app:
        yield app


class Client:
    """Requests to a running server, as the page makes them (or as a hostile client would)."""

    def __init__(self, app: ServeApp) -> None:
        self.port = app.port

    def request(self, method: str, path: str, params: dict | None = None, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, bytes, dict]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        target = path + ("?" + urlencode(params) if params else "")
        try:
            connection.request(method, target, body=body, headers={**HEADER, **(headers or {})})
            response = connection.getresponse()
            return response.status, response.read(), dict(response.getheaders())
        finally:
            connection.close()

    def json(self, method: str, path: str, params: dict | None = None,
             body: bytes | None = None) -> tuple[int, dict]:
        status, data, _ = self.request(method, path, params, body)
        return status, json.loads(data)

    def session(self) -> str:
        return self.json("POST", "/api/session")[1]["session"]

    def upload(self, session: str, name: str, data: bytes, models: str = "0",
               reference: str | None = None) -> tuple[int, dict]:
        params = {"session": session, "name": name, "models": models}
        if reference:
            params["reference"] = reference
        return self.json("POST", "/api/photos", params, data)

    def jobs(self, session: str) -> list[dict]:
        return self.json("GET", "/api/jobs", {"session": session})[1]["jobs"]

    def wait(self, session: str, timeout: float = 60.0) -> dict[str, dict]:
        """The session's jobs by name once none is queued or running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = self.jobs(session)
            if all(job["status"] in ("done", "failed") for job in jobs):
                return {job["name"]: job for job in jobs}
            time.sleep(0.05)
        raise TimeoutError(f"jobs still running after {timeout} s")

    def download(self, session: str, job: str, model: int) -> tuple[int, bytes, dict]:
        return self.request("GET", "/api/download", {"session": session, "job": job,
                                                     "model": str(model)})


def pixels(path_or_bytes) -> np.ndarray:
    """The RGB pixels of an image file (a path, or its bytes)."""
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(source) as image:
        return np.asarray(image.convert("RGB"))
