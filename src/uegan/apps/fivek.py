"""Preparing the MIT-Adobe FiveK data set for the study, from the user's own exports.

The published split (``docs/uegan-spec.md``, "Evaluation protocol (FiveK)"):

=============  ==========================  =======================================
output         source                      processing
=============  ==========================  =======================================
``train/high``  Expert C, a0001-a2250       short edge resized to 512
``train/low``   inputs, a2251-a4500         short edge resized to 512
``test/low``    inputs, a4501-a5000         short edge 512, then centre crop 512x512
``test/label``  Expert C, a4501-a5000       short edge 512, then centre crop 512x512
``val/low``,    a copy of ``val_count``     the same files as in ``test/``
``val/label``   evenly spaced test pairs
=============  ==========================  =======================================

**Validation subset.** ``val/`` is a *copy* of a deterministic subset of the test pairs (the
published code, too, validates on test images): ``val_count`` ids spaced evenly over
a4501-a5000 (default 50: a4501, a4511, ..., a4991), whether or not the files exist. It is meant
for watching training only; choosing a checkpoint on it would leak test information, so the
study's table is computed on ``test/`` with the final checkpoint. ``val_count=0`` leaves it out.

**Files.** Sources are matched by the FiveK id at the start of their names (``a0001-...``,
any letter case), in the folders given and their subfolders. Accepted: 8-bit PNG, JPEG or TIFF
(sRGB), and 16-bit TIFF in ProPhoto RGB, the form in which FiveK distributes the experts'
retouches. Files are read by the project's one reader
(:func:`uegan.io.reader.read_photo`). The colour space comes from the embedded ICC profile
when there is one, judged by its content, not its name (ProPhoto RGB/ROMM is converted as below,
any other profile the reader can apply is converted to sRGB, one it cannot apply is refused);
untagged 16-bit colour TIFFs are taken as ProPhoto RGB and other untagged files as sRGB.
Strips (an aspect ratio over :data:`uegan.io.budget.MAX_ASPECT_RATIO`) are refused before
resizing.
Outputs are 8-bit sRGB PNG named after the source (test and validation pairs both after the
input's name, so that evaluation pairs them by name).

**ProPhoto RGB to sRGB** (:func:`prophoto_to_srgb`), in float64: decode the ProPhoto values
with gamma 1.8 (the curve of the "ProPhoto RGB" ICC profile that Adobe Lightroom embeds in
FiveK's TIFFs; ROMM's short linear toe below 0.03125 differs by at most about one 8-bit level in
the deepest shadows), convert to XYZ with the ROMM primaries and D50 white, adapt to D65 with the
Bradford transform, convert to linear sRGB (IEC 61966-2-1 primaries), clip to [0, 1] (colours
outside sRGB are clipped channel-wise, as a relative-colorimetric matrix/shaper transform does),
and encode with the sRGB curve. Every matrix is derived below from the standards' chromaticities.

**Resizing**: in sRGB-encoded float32 with Pillow's antialiased Lanczos filter, each channel on
its own; an image whose short edge is already 512 is not resampled. 8-bit files are written as
``floor(v * 255 + 0.5)``.

**Idempotence.** ``manifest.json`` in the output folder records the settings, the counts, the
missing files and, for every output, its SHA-256 and its source's name, size, modification time
and SHA-256. A second run recomputes nothing whose output still has the recorded hash and whose
source is unchanged, and rewrites nothing (the manifest included) when nothing changed. An
output that exists but does not match the manifest is never replaced unless ``overwrite``.

**Nothing is removed because a source went away.** An earlier output is removed only when the
split no longer holds it: its FiveK id left the split (a smaller ``val_count``), or another output
of the same folder and id replaced it in this run (its source was renamed). An earlier output whose
source cannot be found (a drive not mounted, a file moved away) or is ambiguous (a second file
with the same FiveK number) is kept with its manifest entry, and the source is reported
(:class:`UnavailableSource`); the run is then not ``ok``. Test pairs keep their earlier name while
their input is unavailable, so the label is not renamed.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import logging
import multiprocessing
import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from uegan.errors import UserError
from uegan.io.budget import check_aspect
# the colour functions live in uegan.io.color and uegan.io.icc; names kept here for importers
from uegan.io.color import (PROPHOTO_GAMMA, PROPHOTO_TO_LINEAR_SRGB, prophoto_to_srgb,  # noqa: F401
                            prophoto_to_srgb_strips, srgb_encode)
from uegan.io.files import atomic_path
from uegan.io.icc import classify_icc
from uegan.io.quantize import quantize, to_unit
from uegan.io.reader import read_photo

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# The split
# ---------------------------------------------------------------------------------------------

HIGH_IDS = range(1, 2251)      # Expert C retouches: the high-quality training set
LOW_IDS = range(2251, 4501)    # inputs: the low-quality training set
TEST_IDS = range(4501, 5001)   # input / Expert C pairs
SHORT_EDGE = 512
TEST_SIZE = 512
DEFAULT_VAL_COUNT = 50
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "uegan-fivek-split/1"
SOURCE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})
OUTPUT_FOLDERS = ("train/high", "train/low", "test/low", "test/label", "val/low", "val/label")
RESAMPLE = "lanczos"

_ID_PATTERN = re.compile(r"^a(\d{4})(?=$|[-_. ])", re.IGNORECASE)


def fivek_id(path: Path) -> int | None:
    """The FiveK number of a file called ``aNNNN-...`` (1..5000), else None."""
    match = _ID_PATTERN.match(path.stem)
    if not match:
        return None
    number = int(match.group(1))
    return number if 1 <= number <= 5000 else None


def id_name(number: int) -> str:
    return f"a{number:04d}"


def val_ids(count: int) -> list[int]:
    """``count`` test ids spaced evenly over a4501-a5000, starting at a4501."""
    if not 0 <= count <= len(TEST_IDS):
        raise UserError(f"--val-count must be between 0 and {len(TEST_IDS)} (got {count})")
    return [TEST_IDS[(i * len(TEST_IDS)) // count] for i in range(count)]


# ---------------------------------------------------------------------------------------------
# Reading a source file: through the one reader (uegan.io.reader), colour from uegan.io.color
# ---------------------------------------------------------------------------------------------

def read_source(path: Path, data: bytes | None = None) -> tuple[np.ndarray, str]:
    """A source file as H x W x 3 float32 sRGB values in [0, 1], and its colour space in words.

    Read by :func:`uegan.io.reader.read_photo` (orientation, ICC profile judged by its content,
    16-bit, grayscale, CMYK); an untagged 16-bit colour TIFF is taken as ProPhoto RGB (FiveK's
    convention) and converted here. A profile the reader cannot apply is refused.
    """
    photo = read_photo(path, data=data)
    bits = photo.bit_depth
    if photo.profile == "ignored":
        raise UserError(f"{path}: colour profile {photo.converted_from!r} cannot be applied: "
                        f"export the image as sRGB or ProPhoto RGB")
    if photo.profile == "untagged" and bits == 16 and photo.format == "tiff" and not photo.grayscale:
        return (prophoto_to_srgb_strips(photo.rgb, 65535.0),
                "untagged 16-bit, taken as ProPhoto RGB")
    if photo.profile == "untagged":
        how = f"untagged {bits}-bit, taken as sRGB"
    elif photo.profile == "srgb":
        how = f"{bits}-bit sRGB (ICC profile)"
    elif classify_icc(photo.icc) == "prophoto":
        how = f"{bits}-bit ProPhoto RGB (ICC profile {photo.converted_from!r})"
    else:
        how = f"{bits}-bit {photo.converted_from}, converted to sRGB"
    return to_unit(photo.rgb), how


def resize_short_edge(image: np.ndarray, short: int = SHORT_EDGE) -> np.ndarray:
    """Resize so that the short edge is ``short`` (long edge rounded); unchanged if it already is."""
    height, width = image.shape[:2]
    if min(height, width) == short:
        return image
    if height <= width:
        size = (int(width * short / height + 0.5), short)
    else:
        size = (short, int(height * short / width + 0.5))
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[:, :, c], dtype=np.float32),
                                           mode="F").resize(size, Image.Resampling.LANCZOS))
                for c in range(image.shape[2])]
    return np.stack(channels, axis=2)


def center_crop(image: np.ndarray, size: int = TEST_SIZE) -> np.ndarray:
    height, width = image.shape[:2]
    if height < size or width < size:
        raise ValueError(f"cannot crop {size}x{size} from {width}x{height}")
    top, left = (height - size) // 2, (width - size) // 2
    return image[top:top + size, left:left + size]


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> 8-bit, ``floor(v * 255 + 0.5)`` (:func:`uegan.io.quantize.quantize`)."""
    return quantize(image, np.uint8)


def prepare_image(path: Path, crop: bool, data: bytes | None = None) -> tuple[np.ndarray, str]:
    """One output image (8-bit sRGB) from a source file: short edge 512, centre crop if ``crop``."""
    image, how = read_source(path, data)
    check_aspect(path, image.shape[1], image.shape[0])  # before a strip is scaled up whole
    image = resize_short_edge(image, SHORT_EDGE)
    if crop:
        image = center_crop(image, TEST_SIZE)
    return to_uint8(image), how


# ---------------------------------------------------------------------------------------------
# Scanning the user's folders and planning the outputs
# ---------------------------------------------------------------------------------------------

@dataclass
class FolderScan:
    """The FiveK files found in one folder."""

    root: Path
    by_id: dict[int, Path] = field(default_factory=dict)
    unrecognised: list[Path] = field(default_factory=list)
    duplicates: dict[int, list[Path]] = field(default_factory=dict)


def scan_folder(folder: str | Path, label: str) -> FolderScan:
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"{label} folder {root} does not exist (pass the folder of your FiveK exports)")
    scan = FolderScan(root)
    found: dict[int, list[Path]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        number = fivek_id(path)
        if number is None or path.suffix.lower() not in SOURCE_EXTENSIONS:
            scan.unrecognised.append(path)
        else:
            found.setdefault(number, []).append(path)
    for number, paths in sorted(found.items()):
        if len(paths) == 1:
            scan.by_id[number] = paths[0]
        else:  # which one is meant is the user's call: neither is used
            scan.duplicates[number] = paths
    return scan


@dataclass(frozen=True)
class Task:
    """One output computed from one source file."""

    output: str          # relative to the output folder, e.g. "train/low/a2251-x.png"
    source_set: str      # "inputs" or "expert-c"
    source: Path
    crop: bool


def _plan(inputs: FolderScan, expert: FolderScan, earlier_test_names: dict[int, str] | None = None
          ) -> tuple[list[Task], dict[str, list[int]]]:
    """The outputs to compute, and the ids with no (unambiguous) source.

    A test pair is named after its input; while the input is unavailable, after the name an
    earlier run gave the pair (``earlier_test_names``), else after the Expert C file.
    """
    earlier_test_names = earlier_test_names or {}
    tasks: list[Task] = []
    missing: dict[str, list[int]] = {"inputs": [], "expert-c": []}

    def add(scan: FolderScan, source_set: str, number: int, folder: str, name: str | None, crop: bool):
        path = scan.by_id.get(number)
        if path is None:
            missing[source_set].append(number)
            return None
        out_name = (name or path.stem) + ".png"
        tasks.append(Task(f"{folder}/{out_name}", source_set, path, crop))
        return out_name

    for number in HIGH_IDS:
        add(expert, "expert-c", number, "train/high", None, crop=False)
    for number in LOW_IDS:
        add(inputs, "inputs", number, "train/low", None, crop=False)
    for number in TEST_IDS:
        input_path = inputs.by_id.get(number)
        name = input_path.stem if input_path is not None else earlier_test_names.get(number)
        if name is None and number in expert.by_id:
            name = expert.by_id[number].stem
        add(inputs, "inputs", number, "test/low", name, crop=True)
        add(expert, "expert-c", number, "test/label", name, crop=True)
    return tasks, missing


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------

def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _settings() -> dict:
    """Everything that changes the pixels of an output (the validation choice does not)."""
    return {"short_edge": SHORT_EDGE, "test_size": TEST_SIZE, "resample": RESAMPLE,
            "prophoto_decoding": f"gamma {PROPHOTO_GAMMA}", "adaptation": "bradford D50->D65",
            "rounding": "floor(v*255+0.5)", "conversion_version": 1}


def _write_png(path: Path, array: np.ndarray, overwrite: bool) -> str:
    """Write an 8-bit PNG atomically; return its SHA-256."""
    buffer = io.BytesIO()
    Image.fromarray(array, mode="RGB").save(buffer, format="PNG", compress_level=6)
    data = buffer.getvalue()
    with atomic_path(path, overwrite=overwrite) as temporary:
        temporary.write_bytes(data)
    return sha256_bytes(data)


def _run_task(task: Task, out_root: Path, overwrite: bool) -> dict:
    """Worker: compute one output. Returns its manifest entry, or {"error": ...}."""
    try:
        stat = task.source.stat()
        data = task.source.read_bytes()
        array, how = prepare_image(task.source, task.crop, data)
        digest = _write_png(out_root / task.output, array, overwrite)
        return {"sha256": digest, "source": _source_entry(task, stat, sha256_bytes(data)), "colour": how}
    except UserError as error:
        return {"error": str(error)}
    except Exception as error:  # one bad file must not stop the other 5000
        return {"error": f"{task.source}: {type(error).__name__}: {error}"}


def _source_entry(task: Task, stat: os.stat_result, digest: str) -> dict:
    return {"set": task.source_set, "name": task.source.name, "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns, "sha256": digest}


def _source_unchanged(task: Task, recorded: dict) -> tuple[bool, dict]:
    """Whether the source is the file the manifest saw (size and time, else content hash)."""
    stat = task.source.stat()
    if recorded.get("set") != task.source_set or recorded.get("name") != task.source.name:
        return False, recorded
    if recorded.get("size") == stat.st_size and recorded.get("mtime_ns") == stat.st_mtime_ns:
        return True, recorded
    if recorded.get("size") == stat.st_size and recorded.get("sha256") == sha256_file(task.source):
        return True, dict(recorded, mtime_ns=stat.st_mtime_ns)  # touched, not changed
    return False, recorded


FOLDER_SOURCE = {"train/high": "expert-c", "train/low": "inputs", "test/low": "inputs",
                 "test/label": "expert-c", "val/low": "inputs", "val/label": "expert-c"}
SOURCE_OPTION = {"inputs": "--inputs", "expert-c": "--expert-c"}


def _split_ids(folder: str, wanted_val: list[int]) -> Iterable[int]:
    """The FiveK ids the split holds in an output folder (nothing for other folders)."""
    return {"train/high": HIGH_IDS, "train/low": LOW_IDS, "test/low": TEST_IDS, "test/label": TEST_IDS,
            "val/low": wanted_val, "val/label": wanted_val}.get(folder, ())


def _folder_and_id(output: str) -> tuple[str, int | None]:
    """``"train/low/a2251-x.png"`` -> ``("train/low", 2251)``."""
    folder, _, name = output.rpartition("/")
    return folder, fivek_id(Path(name))


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


def _unavailable(scan: FolderScan, source_set: str, number: int, kept: list[str],
                 earlier: dict) -> UnavailableSource:
    """Why the earlier outputs ``kept`` of this id have no source in this run."""
    looked_for = None
    for name in kept:
        recorded = earlier.get(name, {})
        recorded = earlier.get(recorded.get("copy_of", ""), recorded)  # a validation copy
        looked_for = looked_for or recorded.get("source", {}).get("name")
    candidates = tuple(sorted(str(p.relative_to(scan.root)) for p in scan.duplicates.get(number, [])))
    return UnavailableSource(number, source_set, scan.root, looked_for, candidates, tuple(kept))


def prepare_fivek(inputs: str | Path, expert_c: str | Path, out: str | Path,
                  val_count: int = DEFAULT_VAL_COUNT, overwrite: bool = False, workers: int = 1,
                  progress: Callable[[int, int], None] | None = None) -> PrepareReport:
    """Build the published split in ``out`` from FiveK exports (see the module docstring)."""
    out_root = Path(out)
    if out_root.exists() and not out_root.is_dir():
        raise UserError(f"{out_root} exists and is not a folder")
    input_scan = scan_folder(inputs, "--inputs")
    expert_scan = scan_folder(expert_c, "--expert-c")
    for scan, label in ((input_scan, "--inputs"), (expert_scan, "--expert-c")):
        if not scan.by_id and not scan.duplicates:
            raise UserError(f"{label} folder {scan.root} holds no FiveK files named aNNNN-*.png/"
                            f".jpg/.tif (found {len(scan.unrecognised)} other files)")
    try:
        if out_root.resolve().is_relative_to(input_scan.root.resolve()) or \
                out_root.resolve().is_relative_to(expert_scan.root.resolve()):
            raise UserError(f"--out {out_root} must not lie inside the source folders")
    except OSError:
        pass
    wanted_val = val_ids(val_count)
    settings = _settings()

    manifest_path = out_root / MANIFEST_NAME
    old_manifest: dict = {}
    if manifest_path.is_file():
        try:
            old_manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise UserError(f"{manifest_path}: unreadable manifest ({error}); move it away and "
                            f"pass --overwrite to rebuild") from error
        if old_manifest.get("format") != MANIFEST_FORMAT:
            raise UserError(f"{manifest_path}: not a manifest of uegan prepare-fivek")
    same_settings = old_manifest.get("settings") == settings
    earlier: dict = old_manifest.get("files", {})
    old_files: dict = earlier if same_settings else {}
    earlier_test_names = {}
    for name in sorted(earlier):
        folder, number = _folder_and_id(name)
        if folder in ("test/low", "test/label") and number is not None:
            earlier_test_names.setdefault(number, Path(name).stem)
    tasks, missing = _plan(input_scan, expert_scan, earlier_test_names)
    task_outputs = {task.output for task in tasks}
    scans = {"inputs": input_scan, "expert-c": expert_scan}
    kept: dict[tuple[str, int], list[str]] = {}   # (source set, id) -> earlier outputs kept

    def keep_earlier(names: Iterable[str]) -> None:
        """Keep the earlier outputs that the split still holds but this run does not produce.

        Such an output is removed later only when another output of its folder and id is in
        ``entries`` (its source was renamed); otherwise its source is missing or ambiguous, or
        its replacement failed: the file stays, and so does its manifest entry.
        """
        produced = {_folder_and_id(name) for name in entries}
        for name in names:
            folder, number = _folder_and_id(name)
            if (name in task_outputs or name in entries or name in failed or number is None
                    or number not in _split_ids(folder, wanted_val)
                    or (folder, number) in produced or not (out_root / name).is_file()):
                continue
            recorded = earlier[name]
            # an entry from other settings keeps only its hash: never taken as up to date
            entries[name] = recorded if same_settings else {k: v for k, v in recorded.items()
                                                            if k != "source"}
            kept.setdefault((FOLDER_SOURCE[folder], number), []).append(name)

    entries: dict[str, dict] = {}
    up_to_date: list[str] = []
    conflicts: list[str] = []
    failed: dict[str, str] = {}
    todo: list[Task] = []
    for task in tasks:
        target = out_root / task.output
        recorded = old_files.get(task.output)
        if recorded is not None and target.is_file():
            same_source, source_entry = _source_unchanged(task, recorded.get("source", {}))
            if same_source and sha256_file(target) == recorded.get("sha256"):
                entries[task.output] = dict(recorded, source=source_entry)
                up_to_date.append(task.output)
                continue
        if target.exists() and not overwrite:
            conflicts.append(task.output)
            continue
        todo.append(task)

    written: list[str] = []
    done = 0

    def record(task: Task, result: dict) -> None:
        nonlocal done
        done += 1
        if "error" in result:
            failed[task.output] = result["error"]
            log.warning("%s", result["error"])
        else:
            entries[task.output] = result
            written.append(task.output)
        if progress is not None:
            progress(done, len(todo))

    if workers > 1 and len(todo) > 1:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = {pool.submit(_run_task, task, out_root, overwrite): task for task in todo}
            for future in concurrent.futures.as_completed(futures):
                record(futures[future], future.result())
    else:
        for task in todo:
            record(task, _run_task(task, out_root, overwrite))

    keep_earlier(name for name in sorted(earlier) if not name.startswith("val/"))

    # validation: copies of test pairs (of earlier test outputs kept above, too)
    test_by_id: dict[int | None, list[str]] = {}
    for output in sorted(task_outputs | set(entries)):
        if output.startswith("test/") and output not in test_by_id.get(fivek_id(Path(output)), []):
            test_by_id.setdefault(fivek_id(Path(output)), []).append(output)
    for number in wanted_val:
        for test_output in test_by_id.get(number, []):
            val_output = "val/" + ("low/" if test_output.startswith("test/low/") else "label/") \
                + test_output.split("/", 2)[2]
            if test_output not in entries:
                failed.setdefault(val_output, f"{test_output} was not produced")
                continue
            digest = entries[test_output]["sha256"]
            target = out_root / val_output
            entry = {"sha256": digest, "copy_of": test_output}
            if target.is_file() and sha256_file(target) == digest:
                entries[val_output] = entry
                up_to_date.append(val_output)
                continue
            if target.exists() and not overwrite:
                conflicts.append(val_output)
                continue
            with atomic_path(target, overwrite=overwrite) as temporary:
                shutil.copyfile(out_root / test_output, temporary)
            entries[val_output] = entry
            written.append(val_output)

    keep_earlier(name for name in sorted(earlier) if name.startswith("val/"))
    # kept while the source is missing or ambiguous (a source that is there but whose new
    # output failed or conflicts is reported as such)
    unavailable = [_unavailable(scans[source_set], source_set, number, sorted(names), earlier)
                   for (source_set, number), names in sorted(kept.items(), key=lambda item: item[0][::-1])
                   if number not in scans[source_set].by_id]   # in the order of the ids
    for source in unavailable:
        log.warning("%s", source.describe())

    expected = {"train/high": len(HIGH_IDS), "train/low": len(LOW_IDS), "test/low": len(TEST_IDS),
                "test/label": len(TEST_IDS), "val/low": len(wanted_val), "val/label": len(wanted_val)}
    counts = {folder: sum(1 for name in entries if name.startswith(folder + "/")) for folder in expected}
    planned = task_outputs | set(entries) | set(failed)
    removed: list[str] = []
    for name, recorded in sorted(earlier.items()):
        # our own earlier outputs that are no longer part of the split (say, a smaller
        # --val-count, or replaced by the output of a renamed source; never those whose source
        # is missing or ambiguous: keep_earlier put them in entries): removed, but only while
        # they still hold what we wrote
        target = out_root / name
        if name not in planned and target.is_file() and sha256_file(target) == recorded.get("sha256"):
            target.unlink()
            removed.append(name)
    stale = sorted(
        str(path.relative_to(out_root)).replace(os.sep, "/")
        for folder in OUTPUT_FOLDERS if (out_root / folder).is_dir()
        for path in (out_root / folder).rglob("*")
        if path.is_file() and not path.name.startswith(".")
        and str(path.relative_to(out_root)).replace(os.sep, "/") not in planned)

    def unused(scan: FolderScan, wanted: Iterable[int]) -> int:
        wanted_set = set(wanted)
        return sum(1 for number in scan.by_id if number not in wanted_set)

    report = PrepareReport(
        out=out_root, counts=counts, expected=expected, written=sorted(written),
        up_to_date=sorted(up_to_date), failed=dict(sorted(failed.items())), conflicts=sorted(conflicts),
        missing={k: sorted(v) for k, v in missing.items()},
        unrecognised={"inputs": [p.name for p in input_scan.unrecognised],
                      "expert-c": [p.name for p in expert_scan.unrecognised]},
        duplicates={"inputs": {id_name(k): [p.name for p in v] for k, v in input_scan.duplicates.items()},
                    "expert-c": {id_name(k): [p.name for p in v] for k, v in expert_scan.duplicates.items()}},
        unused={"inputs": unused(input_scan, list(LOW_IDS) + list(TEST_IDS)),
                "expert-c": unused(expert_scan, list(HIGH_IDS) + list(TEST_IDS))},
        stale=stale, removed=removed, manifest_changed=False, unavailable=unavailable)

    manifest = {
        "format": MANIFEST_FORMAT,
        "split": {"train/high": "Expert C a0001-a2250", "train/low": "inputs a2251-a4500",
                  "test": "inputs and Expert C a4501-a5000",
                  "val": f"copy of the test pairs {', '.join(id_name(n) for n in wanted_val[:3])}"
                         f"{', ...' if len(wanted_val) > 3 else ''} ({len(wanted_val)} ids spaced "
                         f"evenly over a4501-a5000)"},
        "settings": settings,
        "counts": counts,
        "expected_counts": expected,
        "complete": report.complete,
        "missing": {k: [id_name(n) for n in v] for k, v in report.missing.items()},
        "failed": report.failed,
        "kept_without_source": {name: source.describe() for source in unavailable
                                for name in source.kept},
        "val_ids": [id_name(n) for n in wanted_val],
        "files": dict(sorted(entries.items())),
    }
    text = json.dumps(manifest, indent=1, sort_keys=False) + "\n"
    old_text = manifest_path.read_text(encoding="utf-8") if manifest_path.is_file() else None
    if text != old_text:
        out_root.mkdir(parents=True, exist_ok=True)
        with atomic_path(manifest_path, overwrite=True) as temporary:
            temporary.write_text(text, encoding="utf-8")
        report.manifest_changed = True
    return report


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
