"""``uegan prepare-fivek``: build the published FiveK split from the user's exports.

The split, the file rules and the idempotence guarantees are described in :mod:`uegan.apps.fivek`.
:func:`prepare_fivek` runs these steps:

1. scan both folders and plan the outputs (:mod:`uegan.apps.fivek_tasks`);
2. :meth:`Outputs.select`: keep what is up to date, report what would be overwritten;
3. :func:`~uegan.apps.fivek_tasks.run_tasks`: convert the rest;
4. :meth:`Outputs.keep_earlier` and :meth:`Outputs.copy_validation`: keep earlier outputs whose
   source is unavailable, then copy the validation subset from the test pairs;
5. :meth:`Outputs.remove_left_over` and :meth:`Outputs.stale`: remove our own outputs that left
   the split, report anybody else's files in the output folders;
6. :func:`manifest_dict` and :func:`~uegan.apps.fivek_manifest.write_manifest`.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from uegan.apps.fivek import (DEFAULT_VAL_COUNT, HIGH_IDS, LOW_IDS, MANIFEST_FORMAT, OUTPUT_FOLDERS, TEST_IDS,
                              FolderScan, fivek_id, id_name, val_ids)
from uegan.apps.fivek_manifest import (EarlierManifest, conversion_settings, read_manifest, sha256_file,
                                       source_unchanged, write_manifest)
from uegan.apps.fivek_tasks import (Sources, Task, earlier_test_names, folder_and_id, plan_tasks, run_tasks,
                                    scan_sources, split_ids)
from uegan.errors import UserError
from uegan.io.files import atomic_path

log = logging.getLogger(__name__)

FOLDER_SOURCE = {"train/high": "expert-c", "train/low": "inputs", "test/low": "inputs",
                 "test/label": "expert-c", "val/low": "inputs", "val/label": "expert-c"}
SOURCE_OPTION = {"inputs": "--inputs", "expert-c": "--expert-c"}


@dataclass(frozen=True)
class UnavailableSource:
    """A source of earlier outputs that this run could not use: missing, or ambiguous."""

    number: int
    source_set: str                  # "inputs" or "expert-c"
    folder: Path                     # the folder searched (with its subfolders)
    looked_for: str | None           # the file name the earlier run used, when recorded
    candidates: tuple[str, ...]      # ambiguous: every file found for this id; missing: empty
    kept: tuple[str, ...]            # the earlier outputs kept

    @property
    def ambiguous(self) -> bool:
        return bool(self.candidates)

    def describe(self) -> str:
        """One line: the id, what was looked for, what was kept and what to do."""
        where = f"{SOURCE_OPTION[self.source_set]} {self.folder}"
        kept = ", ".join(self.kept)
        if self.ambiguous:
            used = f"; the earlier run used {self.looked_for}" if self.looked_for else ""
            return (f"source {id_name(self.number)} is ambiguous in {where}: {len(self.candidates)} "
                    f"files ({', '.join(self.candidates)}{used}); kept the earlier {kept}; "
                    f"leave one file for {id_name(self.number)} and run again")
        what = self.looked_for or f"a file named {id_name(self.number)}-*"
        return (f"source {id_name(self.number)} is missing: {what} not found in {where} or its "
                f"subfolders; kept the earlier {kept}; restore the file (or mount its drive) and "
                f"run again, or delete the output to leave {id_name(self.number)} out")


def unavailable_source(scan: FolderScan, source_set: str, number: int, kept: list[str],
                       earlier: dict) -> UnavailableSource:
    """Why the earlier outputs ``kept`` of this id have no source in this run."""
    looked_for = None
    for name in kept:
        recorded = earlier.get(name, {})
        recorded = earlier.get(recorded.get("copy_of", ""), recorded)  # a validation copy
        looked_for = looked_for or recorded.get("source", {}).get("name")
    candidates = tuple(sorted(str(p.relative_to(scan.root)) for p in scan.duplicates.get(number, [])))
    return UnavailableSource(number, source_set, scan.root, looked_for, candidates, tuple(kept))


@dataclass
class PrepareReport:
    """What a run of :func:`prepare_fivek` found and did."""

    out: Path
    counts: dict[str, int]
    expected: dict[str, int]
    written: list[str]
    up_to_date: list[str]
    failed: dict[str, str]                 # output -> reason
    conflicts: list[str]                   # outputs that exist but do not match the manifest
    missing: dict[str, list[int]]          # "inputs" / "expert-c" -> FiveK ids
    unrecognised: dict[str, list[str]]     # folder label -> file names
    originals: dict[str, list[str]]        # folder label -> FiveK DNG originals (need exporting)
    duplicates: dict[str, dict[str, list[str]]]
    unused: dict[str, int]                 # files present but not part of the split (by design)
    stale: list[str]                       # files in the output folders that are not in the split
    removed: list[str]                     # earlier outputs of ours no longer in the split
    manifest_changed: bool
    unavailable: list[UnavailableSource] = field(default_factory=list)  # earlier outputs kept

    @property
    def kept(self) -> list[str]:
        """Earlier outputs kept although their source is missing or ambiguous."""
        return sorted(name for source in self.unavailable for name in source.kept)

    @property
    def complete(self) -> bool:
        return self.counts == self.expected

    @property
    def ok(self) -> bool:
        return not (self.failed or self.conflicts or self.stale or self.duplicates_found
                    or self.unavailable)

    @property
    def duplicates_found(self) -> bool:
        return any(self.duplicates.values())


def expected_counts(wanted_val: list[int]) -> dict[str, int]:
    return {"train/high": len(HIGH_IDS), "train/low": len(LOW_IDS), "test/low": len(TEST_IDS),
            "test/label": len(TEST_IDS), "val/low": len(wanted_val), "val/label": len(wanted_val)}


def format_ids(numbers: list[int], limit: int = 12) -> str:
    """``[1, 2, 3, 7]`` -> ``"a0001-a0003, a0007"`` (at most ``limit`` runs, then a count)."""
    runs: list[tuple[int, int]] = []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    text = ", ".join(id_name(a) if a == b else f"{id_name(a)}-{id_name(b)}" for a, b in runs[:limit])
    if len(runs) > limit:
        text += f", ... ({len(runs) - limit} more runs)"
    return text



@dataclass
class Outputs:
    """The outputs of one run as they are decided: up to date, written, failed, conflicting, or
    kept from an earlier run; ``entries`` becomes the manifest's ``files``."""

    out_root: Path
    overwrite: bool
    earlier: EarlierManifest
    wanted_val: list[int]
    task_outputs: set[str] = field(default_factory=set)
    entries: dict[str, dict] = field(default_factory=dict)
    up_to_date: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    kept: dict[tuple[str, int], list[str]] = field(default_factory=dict)  # (set, id) -> outputs

    @property
    def planned(self) -> set[str]:
        """Every output this run accounts for (produced, kept, or failed)."""
        return self.task_outputs | set(self.entries) | set(self.failed)

    def select(self, tasks: list[Task]) -> list[Task]:
        """The tasks to run: not those whose output is up to date, nor those whose output exists
        unrecorded (a conflict, unless ``overwrite``)."""
        self.task_outputs = {task.output for task in tasks}
        todo = []
        for task in tasks:
            target = self.out_root / task.output
            recorded = self.earlier.reusable.get(task.output)
            if recorded is not None and target.is_file():
                same, entry = source_unchanged(task.source_set, task.source, recorded.get("source", {}))
                if same and sha256_file(target) == recorded.get("sha256"):
                    self.entries[task.output] = dict(recorded, source=entry)
                    self.up_to_date.append(task.output)
                    continue
            if target.exists() and not self.overwrite:
                self.conflicts.append(task.output)
                continue
            todo.append(task)
        return todo

    def record(self, task: Task, result: dict) -> None:
        """Take the result of :func:`~uegan.apps.fivek_tasks.run_task`."""
        if "error" in result:
            self.failed[task.output] = result["error"]
            log.warning("%s", result["error"])
        else:
            self.entries[task.output] = result
            self.written.append(task.output)

    def keep_earlier(self, names: Iterable[str]) -> None:
        """Keep the earlier outputs that the split still holds but this run does not produce.

        Such an output is removed later only when another output of its folder and id is in
        ``entries`` (its source was renamed); otherwise its source is missing or ambiguous, or
        its replacement failed: the file stays, and so does its manifest entry.
        """
        produced = {folder_and_id(name) for name in self.entries}
        for name in names:
            folder, number = folder_and_id(name)
            if (name in self.task_outputs or name in self.entries or name in self.failed or number is None
                    or number not in split_ids(folder, self.wanted_val)
                    or (folder, number) in produced or not (self.out_root / name).is_file()):
                continue
            recorded = self.earlier.files[name]
            # an entry from other settings keeps only its hash: never taken as up to date
            self.entries[name] = recorded if self.earlier.same_settings else {
                k: v for k, v in recorded.items() if k != "source"}
            self.kept.setdefault((FOLDER_SOURCE[folder], number), []).append(name)

    def copy_validation(self) -> None:
        """Copy the validation subset from the test pairs (earlier ones kept included)."""
        test_by_id: dict[int | None, list[str]] = {}
        for output in sorted(self.task_outputs | set(self.entries)):
            if output.startswith("test/") and output not in test_by_id.get(fivek_id(Path(output)), []):
                test_by_id.setdefault(fivek_id(Path(output)), []).append(output)
        for number in self.wanted_val:
            for test_output in test_by_id.get(number, []):
                low_or_label = "low/" if test_output.startswith("test/low/") else "label/"
                self._copy(test_output, "val/" + low_or_label + test_output.split("/", 2)[2])

    def _copy(self, test_output: str, val_output: str) -> None:
        if test_output not in self.entries:
            self.failed.setdefault(val_output, f"{test_output} was not produced")
            return
        digest = self.entries[test_output]["sha256"]
        target = self.out_root / val_output
        entry = {"sha256": digest, "copy_of": test_output}
        if target.is_file() and sha256_file(target) == digest:
            self.entries[val_output] = entry
            self.up_to_date.append(val_output)
            return
        if target.exists() and not self.overwrite:
            self.conflicts.append(val_output)
            return
        with atomic_path(target, overwrite=self.overwrite) as temporary:
            shutil.copyfile(self.out_root / test_output, temporary)
        self.entries[val_output] = entry
        self.written.append(val_output)

    def unavailable(self, sources: Sources) -> list[UnavailableSource]:
        """The sources of kept earlier outputs that are missing or ambiguous, in id order (a
        source that is there but whose new output failed or conflicts is reported as such)."""
        return [unavailable_source(sources.by_set(source_set), source_set, number, sorted(names),
                                   self.earlier.files)
                for (source_set, number), names in sorted(self.kept.items(), key=lambda item: item[0][::-1])
                if number not in sources.by_set(source_set).by_id]

    def remove_left_over(self) -> list[str]:
        """Remove our own earlier outputs that the split no longer holds (a smaller validation
        subset, or replaced by the output of a renamed source; never one kept because its source
        is unavailable), and only while they still hold what we wrote."""
        planned, removed = self.planned, []
        for name, recorded in sorted(self.earlier.files.items()):
            target = self.out_root / name
            if name not in planned and target.is_file() and sha256_file(target) == recorded.get("sha256"):
                target.unlink()
                removed.append(name)
        return removed

    def stale(self) -> list[str]:
        """Files in the output folders that are not part of the split (somebody else's)."""
        planned = self.planned
        found = (str(path.relative_to(self.out_root)).replace(os.sep, "/")
                 for folder in OUTPUT_FOLDERS if (self.out_root / folder).is_dir()
                 for path in (self.out_root / folder).rglob("*")
                 if path.is_file() and not path.name.startswith("."))
        return sorted(name for name in found if name not in planned)

    def counts(self) -> dict[str, int]:
        return {folder: sum(1 for name in self.entries if name.startswith(folder + "/"))
                for folder in expected_counts(self.wanted_val)}


def _unused(scan: FolderScan, wanted: Iterable[int]) -> int:
    """Files of ``scan`` whose id the split does not use from this folder."""
    wanted_set = set(wanted)
    return sum(1 for number in scan.by_id if number not in wanted_set)


def build_report(sources: Sources, outputs: Outputs, missing: dict[str, list[int]],
                 unavailable: list[UnavailableSource], removed: list[str]) -> PrepareReport:
    scans = {"inputs": sources.inputs, "expert-c": sources.expert}
    return PrepareReport(
        out=outputs.out_root, counts=outputs.counts(), expected=expected_counts(outputs.wanted_val),
        written=sorted(outputs.written), up_to_date=sorted(outputs.up_to_date),
        failed=dict(sorted(outputs.failed.items())), conflicts=sorted(outputs.conflicts),
        missing={k: sorted(v) for k, v in missing.items()},
        unrecognised={name: [p.name for p in scan.unrecognised] for name, scan in scans.items()},
        originals={name: [p.name for p in scan.originals] for name, scan in scans.items()},
        duplicates={name: {id_name(k): [p.name for p in v] for k, v in scan.duplicates.items()}
                    for name, scan in scans.items()},
        unused={"inputs": _unused(sources.inputs, [*LOW_IDS, *TEST_IDS]),
                "expert-c": _unused(sources.expert, [*HIGH_IDS, *TEST_IDS])},
        stale=outputs.stale(), removed=removed, manifest_changed=False, unavailable=unavailable)


def manifest_dict(report: PrepareReport, entries: dict[str, dict], wanted_val: list[int]) -> dict:
    """The manifest of this run (see :mod:`uegan.apps.fivek_manifest`)."""
    return {
        "format": MANIFEST_FORMAT,
        "split": {"train/high": "Expert C a0001-a2250", "train/low": "inputs a2251-a4500",
                  "test": "inputs and Expert C a4501-a5000",
                  "val": f"copy of the test pairs {', '.join(id_name(n) for n in wanted_val[:3])}"
                         f"{', ...' if len(wanted_val) > 3 else ''} ({len(wanted_val)} ids spaced "
                         f"evenly over a4501-a5000)"},
        "settings": conversion_settings(),
        "counts": report.counts,
        "expected_counts": report.expected,
        "complete": report.complete,
        "missing": {k: [id_name(n) for n in v] for k, v in report.missing.items()},
        "failed": report.failed,
        "kept_without_source": {name: source.describe() for source in report.unavailable
                                for name in source.kept},
        "val_ids": [id_name(n) for n in wanted_val],
        "files": dict(sorted(entries.items())),
    }


def prepare_fivek(inputs: str | Path, expert_c: str | Path, out: str | Path,
                  val_count: int = DEFAULT_VAL_COUNT, overwrite: bool = False, workers: int = 1,
                  progress: Callable[[int, int], None] | None = None) -> PrepareReport:
    """Build the published split in ``out`` from FiveK exports (see :mod:`uegan.apps.fivek`)."""
    out_root = Path(out)
    if out_root.exists() and not out_root.is_dir():
        raise UserError(f"{out_root} exists and is not a folder")
    sources = scan_sources(inputs, expert_c, out_root)
    wanted_val = val_ids(val_count)
    earlier = read_manifest(out_root)
    tasks, missing = plan_tasks(sources, earlier_test_names(earlier.files))
    outputs = Outputs(out_root, overwrite, earlier, wanted_val)
    todo = outputs.select(tasks)
    run_tasks(todo, out_root, overwrite, workers, outputs.record, progress)
    outputs.keep_earlier(name for name in sorted(earlier.files) if not name.startswith("val/"))
    outputs.copy_validation()
    outputs.keep_earlier(name for name in sorted(earlier.files) if name.startswith("val/"))
    unavailable = outputs.unavailable(sources)
    for source in unavailable:
        log.warning("%s", source.describe())
    removed = outputs.remove_left_over()   # before looking for stale files
    report = build_report(sources, outputs, missing, unavailable, removed)
    report.manifest_changed = write_manifest(out_root, manifest_dict(report, outputs.entries, wanted_val))
    return report
