"""Sessions, jobs and the temporary folder of ``uegan serve``.

Every browser tab asks for its own session (a random id made by the server), and every request
names its session: a tab sees, previews and downloads only its own photos. Nothing a client sends
ever becomes a path. Files live in one temporary folder made at start and removed at exit, under
names the server makes (``s3/j7-input.png``, ``s3/j7-m1.png``); the client's file name is kept
as a label (shown on the page, and used to name downloads) after :func:`display_name` has taken
away any folder part, and its extension only picks the output format, as ``uegan enhance`` does.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import secrets
import shutil
import tempfile
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from uegan.io.listing import is_image_path
from uegan.io.photo import OUTPUT_FORMATS, normalise_format

log = logging.getLogger(__name__)

MAX_NAME = 120
_UNSAFE_IN_DOWNLOAD = re.compile(r"[^A-Za-z0-9._-]+")


def display_name(raw: str | None) -> str:
    """A client's file name reduced to a label: the last part after any ``/`` or ``\\``, without
    control characters, at most :data:`MAX_NAME` characters; ``photo`` when nothing is left."""
    name = re.split(r"[/\\]", raw or "")[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    if name in ("", ".", ".."):
        return "photo"
    return name[-MAX_NAME:]


def output_format(name: str) -> str:
    """The format ``uegan enhance`` writes for an input called ``name``: its extension's when it
    is an image extension, else PNG (``enhance`` appends ``.png`` to such names)."""
    path = PurePath(name)
    return normalise_format(path.suffix) if is_image_path(Path(path.name)) else "png"


def download_name(name: str, label: str, format: str) -> str:
    """``<photo stem>-<checkpoint label>.<ext>`` in safe characters (letters, digits, ``._-``)."""
    stem = _UNSAFE_IN_DOWNLOAD.sub("_", PurePath(name).stem).strip("._") or "photo"
    tag = _UNSAFE_IN_DOWNLOAD.sub("_", label).strip("._") or "model"
    return f"{stem}-{tag}{OUTPUT_FORMATS[format][1]}"


def json_number(value: float) -> float | str:
    """JSON has no infinity: identical images (PSNR = inf) are sent as ``"inf"``."""
    return "inf" if math.isinf(value) else value


@dataclass
class Result:
    """One photo enhanced by one checkpoint."""

    model: int
    file: Path
    preview: Path
    seconds: float
    download: str
    scores: dict[str, float] | None = None


@dataclass
class Reference:
    """A label photo uploaded for the metrics, paired with photos by the page."""

    id: str
    name: str
    file: Path


@dataclass
class Job:
    """One uploaded photo and what became of it."""

    id: str
    name: str
    source: Path
    format: str
    models: tuple[int, ...]
    reference: Reference | None = None
    status: str = "queued"  # queued, running, done, failed
    stage: str = "waiting"
    steps_done: int = 0
    error: str | None = None
    note: str | None = None  # a problem that did not stop the job (an unusable reference)
    size: tuple[int, int] | None = None
    preview: Path | None = None
    input_scores: dict[str, float] | None = None
    results: dict[int, Result] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        """Reading, one step a checkpoint, and the scores when there is a reference."""
        return 1 + len(self.models) + (self.reference is not None)

    def to_json(self, ahead: int) -> dict:
        def scores(values: dict[str, float] | None) -> dict | None:
            return None if values is None else {k: json_number(v) for k, v in values.items()}

        return {
            "id": self.id, "name": self.name, "status": self.status,
            "stage": (f"waiting ({ahead} ahead)" if self.status == "queued" and ahead
                      else self.stage),
            "progress": self.steps_done / self.steps, "error": self.error, "note": self.note,
            "size": self.size, "preview": self.preview is not None,
            "reference": self.reference.name if self.reference else None,
            "input_scores": scores(self.input_scores),
            "results": [{"model": r.model, "seconds": round(r.seconds, 3), "download": r.download,
                         "scores": scores(r.scores)} for r in self.results.values()],
        }


@dataclass
class Session:
    """One browser tab's photos: ``id`` is the secret the tab sends, ``folder`` its files."""

    id: str
    folder: Path
    jobs: dict[str, Job] = field(default_factory=dict)
    references: dict[str, Reference] = field(default_factory=dict)
    counter: int = 0

    def next_name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"


class Store:
    """The sessions and the temporary folder that holds every upload and result.

    One lock guards every change; the worker thread and the request threads share it.
    """

    def __init__(self, parent: str | Path | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="uegan-serve-", dir=parent))  # mode 0700
        self.lock = threading.RLock()
        self._sessions: dict[str, Session] = {}
        self._order: list[Job] = []  # every job in the order it came, for the queue position

    def new_session(self) -> Session:
        with self.lock:
            folder = self.root / f"s{len(self._sessions) + 1}"
            folder.mkdir()
            session = Session(secrets.token_urlsafe(18), folder)
            self._sessions[session.id] = session
            return session

    def session(self, session_id: str | None) -> Session | None:
        with self.lock:
            return self._sessions.get(session_id or "")

    def new_reference(self, session: Session, name: str) -> Reference:
        """A reference whose upload goes to ``reference.file``; :meth:`keep` keeps it once written."""
        with self.lock:
            reference_id = session.next_name("r")
            return Reference(reference_id, display_name(name),
                             session.folder / f"{reference_id}-reference")

    def keep(self, session: Session, reference: Reference) -> None:
        with self.lock:
            session.references[reference.id] = reference

    def new_job(self, session: Session, name: str, models: tuple[int, ...],
                reference: Reference | None) -> Job:
        """A job whose upload goes to ``job.source``; queued by :meth:`queued` once written."""
        with self.lock:
            job_id = session.next_name("j")
            label = display_name(name)
            return Job(job_id, label, session.folder / f"{job_id}-input", output_format(label),
                       models, reference)

    def queued(self, session: Session, job: Job) -> None:
        with self.lock:
            session.jobs[job.id] = job
            self._order.append(job)

    def snapshot(self, session: Session) -> list[dict]:
        """The session's jobs as the page shows them, with each waiting job's place in line."""
        with self.lock:
            waiting = [job for job in self._order if job.status in ("queued", "running")]
            position = {id(job): index for index, job in enumerate(waiting)}
            return [job.to_json(position.get(id(job), 0)) for job in session.jobs.values()]

    def remove(self) -> None:
        """Remove the temporary folder and everything in it."""
        shutil.rmtree(self.root, ignore_errors=True)
        if self.root.exists():  # a file appeared while it was being removed: once more
            with contextlib.suppress(OSError):
                shutil.rmtree(self.root)
        if self.root.exists():
            log.warning("could not remove the temporary folder %s", self.root)
        else:
            log.info("removed the temporary folder %s", self.root)
