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
resizing. FiveK's camera originals (``aNNNN-*.dng``) are not sources: the published split was
made from Lightroom exports of them, so they are named in the report with the export they need
(:data:`EXPORT_STEPS`). Developing them with the ``raw`` extra would not give the published
split: LibRaw's rendering (demosaicing, colour matrix, no Adobe camera profile) differs from
Lightroom's.
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
(:class:`uegan.apps.fivek_prepare.UnavailableSource`); the run is then not ``ok``. Test pairs keep their earlier name while
their input is unavailable, so the label is not renamed.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from uegan.errors import UserError
from uegan.io.budget import check_aspect
# the colour functions live in uegan.io.color and uegan.io.icc; names kept here for importers
from uegan.io.color import (PROPHOTO_GAMMA, PROPHOTO_TO_LINEAR_SRGB, prophoto_to_srgb,  # noqa: F401
                            prophoto_to_srgb_strips, srgb_encode)
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
ORIGINAL_EXTENSIONS = frozenset({".dng"})  # the camera originals FiveK distributes
# what to do with the DNG originals found in each folder (the report says it)
EXPORT_STEPS = {
    "inputs": ("export each from the data set's Lightroom catalogue as the published inputs were "
               "made, the \"InputAsShotZeroed\" version (as-shot white balance, every setting "
               "zeroed), as 16-bit ProPhoto RGB TIFF (or 8-bit sRGB PNG/JPEG), keeping the "
               "aNNNN- names"),
    "expert-c": ("Expert C's retouches are Lightroom settings on these originals: use the 16-bit "
                 "ProPhoto RGB TIFFs of Expert C that FiveK distributes, or export Expert C's "
                 "version of each from the data set's Lightroom catalogue in that form, keeping "
                 "the aNNNN- names"),
}
NOT_DEVELOPED = ("uegan's raw extra does not replace this export: LibRaw develops a DNG "
                 "differently from Lightroom, so the split would not be the published one")
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
    originals: list[Path] = field(default_factory=list)  # aNNNN-*.dng: need exporting first


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
        if number is not None and path.suffix.lower() in ORIGINAL_EXTENSIONS:
            scan.originals.append(path)
        elif number is None or path.suffix.lower() not in SOURCE_EXTENSIONS:
            scan.unrecognised.append(path)
        else:
            found.setdefault(number, []).append(path)
    for number, paths in sorted(found.items()):
        if len(paths) == 1:
            scan.by_id[number] = paths[0]
        else:  # which one is meant is the user's call: neither is used
            scan.duplicates[number] = paths
    return scan
