"""The tasks of ``uegan prepare-fivek``: scan the source folders, plan the outputs, convert.

:func:`scan_sources` finds the FiveK files in both folders and refuses folders that overlap (the
same folder for inputs and Expert C, one inside the other, or the output inside either: labels
would be built from inputs, or outputs scanned as sources). :func:`plan_tasks` lists the outputs
to compute, one :class:`Task` per output. :func:`run_tasks` converts them, in worker processes if
asked; a source that cannot be converted (unreadable, a colour profile that is not supported, a
shape no photo has, checked before any resizing) is one failed output, and the others go on.
"""

from __future__ import annotations

import concurrent.futures
import io
import multiprocessing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from uegan.apps.fivek import (EXPORT_STEPS, HIGH_IDS, LOW_IDS, TEST_IDS, FolderScan, fivek_id,
                              prepare_image, scan_folder)
from uegan.apps.fivek_manifest import sha256_bytes, source_entry
from uegan.errors import UserError
from uegan.io.files import atomic_path

Progress = Callable[[int, int], None]   # (outputs done, outputs to do)


@dataclass(frozen=True)
class Sources:
    inputs: FolderScan
    expert: FolderScan

    def by_set(self, source_set: str) -> FolderScan:
        return self.inputs if source_set == "inputs" else self.expert


def _inside(inner: Path, outer: Path) -> bool:
    try:
        return inner.resolve().is_relative_to(outer.resolve())
    except OSError:
        return False


def check_folders(inputs: Path, expert: Path, out: Path) -> None:
    """Refuse folders that overlap: labels would be built from inputs, or outputs scanned as sources."""
    if _inside(inputs, expert) or _inside(expert, inputs):
        relation = ("are the same folder" if _inside(inputs, expert) and _inside(expert, inputs)
                    else "lie one inside the other")
        raise UserError(f"--inputs {inputs} and --expert-c {expert} {relation}: give the folder of "
                        f"the inputs and the separate folder of Expert C's retouches")
    for option, folder in (("--inputs", inputs), ("--expert-c", expert)):
        if _inside(out, folder):
            raise UserError(f"--out {out} must not lie inside the source folders ({option} "
                            f"{folder}): choose an output folder outside them")


def scan_sources(inputs: str | Path, expert_c: str | Path, out: Path) -> Sources:
    """Both source folders scanned, after checking that they are usable."""
    sources = Sources(scan_folder(inputs, "--inputs"), scan_folder(expert_c, "--expert-c"))
    check_folders(sources.inputs.root, sources.expert.root, out)
    for scan, source_set in ((sources.inputs, "inputs"), (sources.expert, "expert-c")):
        if not scan.by_id and not scan.duplicates:
            label = f"--{source_set}"
            if scan.originals:
                raise UserError(f"{label} folder {scan.root} holds {len(scan.originals)} FiveK DNG "
                                f"originals and no exported images: {EXPORT_STEPS[source_set]}")
            raise UserError(f"{label} folder {scan.root} holds no FiveK files named aNNNN-*.png/"
                            f".jpg/.tif (found {len(scan.unrecognised)} other files)")
    return sources


@dataclass(frozen=True)
class Task:
    """One output computed from one source file."""

    output: str          # relative to the output folder, e.g. "train/low/a2251-x.png"
    source_set: str      # "inputs" or "expert-c"
    source: Path
    crop: bool


def earlier_test_names(files: Iterable[str]) -> dict[int, str]:
    """FiveK id -> the name an earlier run gave its test pair."""
    names: dict[int, str] = {}
    for name in sorted(files):
        folder, number = folder_and_id(name)
        if folder in ("test/low", "test/label") and number is not None:
            names.setdefault(number, Path(name).stem)
    return names


def plan_tasks(sources: Sources, test_names: dict[int, str] | None = None
               ) -> tuple[list[Task], dict[str, list[int]]]:
    """The outputs to compute, and the ids with no (unambiguous) source.

    A test pair is named after its input; while the input is unavailable, after the name an
    earlier run gave the pair (``test_names``), else after the Expert C file.
    """
    test_names = test_names or {}
    tasks: list[Task] = []
    missing: dict[str, list[int]] = {"inputs": [], "expert-c": []}

    def add(source_set: str, number: int, folder: str, name: str | None, crop: bool) -> None:
        path = sources.by_set(source_set).by_id.get(number)
        if path is None:
            missing[source_set].append(number)
        else:
            tasks.append(Task(f"{folder}/{name or path.stem}.png", source_set, path, crop))

    for number in HIGH_IDS:
        add("expert-c", number, "train/high", None, crop=False)
    for number in LOW_IDS:
        add("inputs", number, "train/low", None, crop=False)
    for number in TEST_IDS:
        input_path = sources.inputs.by_id.get(number)
        name = input_path.stem if input_path is not None else test_names.get(number)
        if name is None and number in sources.expert.by_id:
            name = sources.expert.by_id[number].stem
        add("inputs", number, "test/low", name, crop=True)
        add("expert-c", number, "test/label", name, crop=True)
    return tasks, missing


def folder_and_id(output: str) -> tuple[str, int | None]:
    """``"train/low/a2251-x.png"`` -> ``("train/low", 2251)``."""
    folder, _, name = output.rpartition("/")
    return folder, fivek_id(Path(name))


def split_ids(folder: str, wanted_val: list[int]) -> Iterable[int]:
    """The FiveK ids the split holds in an output folder (nothing for other folders)."""
    return {"train/high": HIGH_IDS, "train/low": LOW_IDS, "test/low": TEST_IDS, "test/label": TEST_IDS,
            "val/low": wanted_val, "val/label": wanted_val}.get(folder, ())


# ------------------------------------------------------------------------------- converting

def _write_png(path: Path, array: np.ndarray, overwrite: bool) -> str:
    """Write an 8-bit PNG atomically; return its SHA-256."""
    buffer = io.BytesIO()
    Image.fromarray(array, mode="RGB").save(buffer, format="PNG", compress_level=6)
    data = buffer.getvalue()
    with atomic_path(path, overwrite=overwrite) as temporary:
        temporary.write_bytes(data)
    return sha256_bytes(data)


def run_task(task: Task, out_root: Path, overwrite: bool) -> dict:
    """Worker: compute one output. Returns its manifest entry, or {"error": ...}."""
    try:
        stat = task.source.stat()
        data = task.source.read_bytes()
        array, how = prepare_image(task.source, task.crop, data)
        digest = _write_png(out_root / task.output, array, overwrite)
        return {"sha256": digest, "source": source_entry(task.source_set, task.source, stat,
                                                         sha256_bytes(data)), "colour": how}
    except UserError as error:
        return {"error": str(error)}
    except Exception as error:  # one bad file must not stop the other 5000
        return {"error": f"{task.source}: {type(error).__name__}: {error}"}


def run_tasks(todo: list[Task], out_root: Path, overwrite: bool, workers: int,
              record: Callable[[Task, dict], None], progress: Progress | None = None) -> None:
    """Run every task (in ``workers`` processes when more than one), ``record`` each result and
    tell ``progress`` (done, total) after each."""
    done = 0

    def finished(task: Task, result: dict) -> None:
        nonlocal done
        record(task, result)
        done += 1
        if progress is not None:
            progress(done, len(todo))

    if workers > 1 and len(todo) > 1:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = {pool.submit(run_task, task, out_root, overwrite): task for task in todo}
            for future in concurrent.futures.as_completed(futures):
                finished(futures[future], future.result())
    else:
        for task in todo:
            finished(task, run_task(task, out_root, overwrite))
