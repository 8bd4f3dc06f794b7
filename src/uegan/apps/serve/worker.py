"""The work behind the page: one thread that enhances the uploaded photos, one at a time.

Each photo goes through :meth:`uegan.inference.Enhancer.enhance_file`, the function ``uegan
enhance`` writes with, in the format ``uegan enhance`` would choose for its name: the download is
the file the command gives (same bytes: sRGB profile, EXIF kept). One photo at a time, because
each enhancement already uses every processor core; the page shows each photo's place in line
and its steps. A bad photo fails alone, with one message that names it by the client's file name
(never by the server's temporary path).
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from uegan.errors import UserError
from uegan.inference import Enhancer
from uegan.io.budget import ReadBudget
from uegan.io.errors import PhotoError
from uegan.io.quantize import to_8bit
from uegan.io.reader import read_photo
from uegan.metrics import full_reference_scores
from uegan.apps.serve.config import ServeConfig
from uegan.apps.serve.store import Job, Result, Session, Store, download_name

log = logging.getLogger(__name__)

PREVIEW_QUALITY = 90


@dataclass
class Model:
    """A loaded checkpoint: its short label (shown on the page), its variant and its enhancer."""

    label: str
    variant: str | None
    enhancer: Enhancer


def load_models(config: ServeConfig) -> list[Model]:
    """One :class:`Model` per checkpoint, loaded as ``uegan enhance`` loads them."""
    models = []
    for path, label in zip(config.checkpoints, config.labels):
        try:
            enhancer = Enhancer.load(path, config.device, max_side=config.max_side,
                                     full_res=config.full_res)
        except OSError as error:
            raise UserError(f"--checkpoint {path}: cannot read it "
                            f"({error.strerror or error})") from error
        models.append(Model(label, enhancer.variant, enhancer))
    return models


def write_preview(rgb: np.ndarray, path: Path, side: int) -> None:
    """An 8-bit sRGB JPEG of ``rgb`` whose long side is at most ``side``, for the page only."""
    image = Image.fromarray(np.ascontiguousarray(to_8bit(rgb)), "RGB")
    if max(image.size) > side:
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
    image.save(path, format="JPEG", quality=PREVIEW_QUALITY)


class Worker:
    """Enhances queued jobs in a thread of its own until :meth:`stop`."""

    def __init__(self, store: Store, models: list[Model], config: ServeConfig) -> None:
        self.store = store
        self.models = models
        self.config = config
        self.budget = ReadBudget(max_pixels=config.max_pixels)
        self._queue: queue.Queue[tuple[Session, Job] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="uegan-serve-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, session: Session, job: Job) -> None:
        self.store.queued(session, job)
        self._queue.put((session, job))

    def stop(self, wait: float = 5.0) -> None:
        """Take no new job; wait up to ``wait`` seconds for the one in progress."""
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(wait)

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            _session, job = item
            try:
                self.process(job)
            except Exception as error:  # a bug must not stop the page: the photo fails alone
                log.exception("%s: unexpected error", job.name)
                self._fail(job, f"{job.name}: {error.__class__.__name__}: {error}")

    def _set(self, job: Job, **changes) -> None:
        with self.store.lock:
            for name, value in changes.items():
                setattr(job, name, value)

    def _fail(self, job: Job, message: str) -> None:
        """The job failed: ``message`` on the page, naming no file of the temporary folder."""
        message = message.replace(str(job.source), job.name)
        message = re.sub(re.escape(str(self.store.root)) + r"\S*", "(a temporary file)", message)
        self._set(job, status="failed", stage="failed", error=message)

    @staticmethod
    def _message(error: Exception, path: Path, name: str) -> str:
        """One line for ``error``, the file ``path`` called ``name`` as the user knows it."""
        text = f"{name}: out of memory" if isinstance(error, MemoryError) else str(error)
        text = text.replace(str(path), name)
        return text if text.startswith(name) else f"{name}: {text}"

    def process(self, job: Job) -> None:
        """Read the photo (preview), enhance it with each chosen checkpoint, score it."""
        self._set(job, status="running", stage="reading")
        try:
            photo = read_photo(job.source, budget=self.budget)
        except (PhotoError, UserError, OSError, MemoryError) as error:
            self._fail(job, self._message(error, job.source, job.name))
            return
        preview = job.source.with_name(f"{job.id}-input-preview.jpg")
        write_preview(photo.rgb, preview, self.config.preview_side)
        original = to_8bit(photo.rgb)
        del photo
        self._set(job, preview=preview, size=(original.shape[1], original.shape[0]), steps_done=1)
        enhanced: dict[int, np.ndarray] = {}
        for count, index in enumerate(job.models, 1):
            model = self.models[index]
            self._set(job, stage=f"enhancing with {model.label} ({count} of {len(job.models)})")
            pixels = self._enhance(job, index, model)
            if pixels is None:
                return
            if job.reference is not None:
                enhanced[index] = pixels
            self._set(job, steps_done=job.steps_done + 1)
        if job.reference is not None:
            self._set(job, stage="scoring against the reference")
            self._score(job, original, enhanced)
        self._set(job, status="done", stage="done", steps_done=job.steps)

    def _enhance(self, job: Job, index: int, model: Model) -> np.ndarray | None:
        """The result file of one checkpoint and its preview; its 8-bit pixels, or None when the
        photo failed (the job then says why)."""
        out = job.source.with_name(f"{job.id}-m{index}")
        started = time.perf_counter()
        try:
            model.enhancer.enhance_file(job.source, out, format=job.format,
                                        max_pixels=self.config.max_pixels)
        except (PhotoError, UserError, OSError, MemoryError) as error:
            self._fail(job, self._message(error, job.source, job.name))
            return None
        seconds = time.perf_counter() - started
        enhanced = to_8bit(read_photo(out, budget=self.budget).rgb)
        preview = out.with_name(f"{out.name}-preview.jpg")
        write_preview(enhanced, preview, self.config.preview_side)
        result = Result(index, out, preview, seconds,
                        download_name(job.name, model.label, job.format))
        with self.store.lock:
            job.results[index] = result
        log.info("%s enhanced with %s in %.2f s", job.name, model.label, seconds)
        return enhanced

    def _score(self, job: Job, original: np.ndarray, enhanced: dict[int, np.ndarray]) -> None:
        """PSNR, SSIM and CIEDE2000 of the input and of each result against the reference; a
        reference that cannot be used is a note on the photo, never a failure."""
        reference = job.reference
        try:
            label = to_8bit(read_photo(reference.file, budget=self.budget).rgb)
        except (PhotoError, UserError, OSError, MemoryError) as error:
            self._set(job, note=self._message(error, reference.file, reference.name))
            return
        if label.shape != original.shape:
            self._set(job, note=f"{reference.name}: {label.shape[1]} x {label.shape[0]} pixels, "
                                f"the photo {original.shape[1]} x {original.shape[0]}: no scores")
            return
        scores = {"input": full_reference_scores(original, label)}
        for index, pixels in enhanced.items():
            scores[index] = full_reference_scores(pixels, label)
        with self.store.lock:
            job.input_scores = scores.pop("input")
            for index, values in scores.items():
                job.results[index].scores = values
