"""A session's results as one zip: the full-resolution files, as downloaded one by one."""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path, PurePath

from uegan.apps.serve.store import Session


def unique_names(names: list[str]) -> list[str]:
    """``names`` with ``-2``, ``-3``, ... before the extension of repeats (two photos both called
    ``IMG_0001.jpg``, from two folders, stay two files)."""
    seen: set[str] = set()
    unique = []
    for name in names:
        candidate, number = name, 1
        while candidate.lower() in seen:
            number += 1
            path = PurePath(name)
            candidate = f"{path.stem}-{number}{path.suffix}"
        seen.add(candidate.lower())
        unique.append(candidate)
    return unique


def write_zip(session: Session, lock: threading.RLock) -> Path | None:
    """Every finished result of ``session`` in a new zip in its folder (the caller removes it
    once sent), or None when there is none yet. Stored, not compressed: the photos are."""
    with lock:
        results = [result for job in session.jobs.values() for result in job.results.values()]
        archive = session.folder / f"{session.next_name('z')}.zip"
    if not results:
        return None
    names = unique_names([result.download for result in results])
    with zipfile.ZipFile(archive, "x", compression=zipfile.ZIP_STORED) as bundle:
        for name, result in zip(names, results):
            bundle.write(result.file, name)
    return archive
