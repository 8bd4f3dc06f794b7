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
retouches. The colour space comes from the embedded ICC profile when there is one (sRGB or
ProPhoto RGB/ROMM; any other profile is refused); untagged 16-bit TIFFs are taken as ProPhoto RGB
and untagged 8-bit files as sRGB. Outputs are 8-bit sRGB PNG named after the source (test and
validation pairs both after the input's name, so that evaluation pairs them by name).

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

import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from uegan.errors import UserError

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
# Colour: ProPhoto RGB (ROMM RGB, D50) -> sRGB (IEC 61966-2-1, D65)
# ---------------------------------------------------------------------------------------------

ROMM_PRIMARIES_XY = ((0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001))
D50_XY = (0.3457, 0.3585)
SRGB_PRIMARIES_XY = ((0.6400, 0.3300), (0.3000, 0.6000), (0.1500, 0.0600))
D65_XY = (0.3127, 0.3290)
PROPHOTO_GAMMA = 1.8
BRADFORD = np.array([[0.8951, 0.2664, -0.1614],
                     [-0.7502, 1.7135, 0.0367],
                     [0.0389, -0.0685, 1.0296]])


def xy_to_xyz(xy: tuple[float, float]) -> np.ndarray:
    """Chromaticity (x, y) -> XYZ with Y = 1."""
    x, y = xy
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def rgb_to_xyz_matrix(primaries_xy, white_xy) -> np.ndarray:
    """The 3x3 matrix taking linear RGB to XYZ for these primaries, white (1,1,1) -> white (Y=1)."""
    columns = np.stack([xy_to_xyz(p) for p in primaries_xy], axis=1)
    scale = np.linalg.solve(columns, xy_to_xyz(white_xy))
    return columns * scale


def bradford_matrix(source_white_xy, target_white_xy) -> np.ndarray:
    """Bradford chromatic adaptation of XYZ from one white to another."""
    source = BRADFORD @ xy_to_xyz(source_white_xy)
    target = BRADFORD @ xy_to_xyz(target_white_xy)
    return np.linalg.inv(BRADFORD) @ np.diag(target / source) @ BRADFORD


PROPHOTO_TO_XYZ_D50 = rgb_to_xyz_matrix(ROMM_PRIMARIES_XY, D50_XY)
SRGB_TO_XYZ_D65 = rgb_to_xyz_matrix(SRGB_PRIMARIES_XY, D65_XY)
D50_TO_D65 = bradford_matrix(D50_XY, D65_XY)
PROPHOTO_TO_LINEAR_SRGB = np.linalg.inv(SRGB_TO_XYZ_D65) @ D50_TO_D65 @ PROPHOTO_TO_XYZ_D50


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve (IEC 61966-2-1) on values in [0, 1]."""
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear,
                    1.055 * np.power(linear, 1 / 2.4) - 0.055)


def prophoto_to_srgb(rgb: np.ndarray) -> np.ndarray:
    """ProPhoto RGB values in [0, 1] (..., 3) -> sRGB values in [0, 1], float64."""
    values = np.clip(np.asarray(rgb, dtype=np.float64), 0.0, 1.0)
    linear = np.power(values, PROPHOTO_GAMMA) @ PROPHOTO_TO_LINEAR_SRGB.T
    return srgb_encode(linear)


def _prophoto_to_srgb_chunked(values: np.ndarray, scale: float, rows: int = 256) -> np.ndarray:
    """Convert a large H x W x 3 integer array in row chunks (float64 math, float32 result)."""
    out = np.empty(values.shape, dtype=np.float32)
    for top in range(0, values.shape[0], rows):
        out[top:top + rows] = prophoto_to_srgb(values[top:top + rows] / scale)
    return out


# ---------------------------------------------------------------------------------------------
# Reading a source file
# ---------------------------------------------------------------------------------------------

def classify_icc(icc: bytes | None) -> str | None:
    """"prophoto", "srgb", another profile's description, or None for no profile."""
    if not icc:
        return None
    description = ""
    try:
        from PIL import ImageCms
        description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    except Exception:  # no littlecms, or a profile it cannot parse: look at the raw bytes
        description = icc[:4096].replace(b"\x00", b"").decode("latin-1", "replace")
    lowered = description.lower()
    if "prophoto" in lowered or "romm" in lowered:
        return "prophoto"
    if "srgb" in lowered or "61966" in lowered:
        return "srgb"
    return description.strip() or "an unnamed ICC profile"


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply a TIFF/EXIF orientation tag (1..8) to an H x W x C array, as Pillow does."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(int(orientation))
    return np.ascontiguousarray(op(array)) if op else array


def _read_tiff(data: bytes, name: str) -> tuple[np.ndarray, str | None]:
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tiff:
        page = tiff.pages[0]
        array = page.asarray()
        axes = page.axes
        icc_tag = page.tags.get("InterColorProfile")
        orientation_tag = page.tags.get("Orientation")
        icc = bytes(icc_tag.value) if icc_tag is not None else None
        orientation = int(orientation_tag.value) if orientation_tag is not None else 1
    if "S" in axes and axes.index("S") < axes.index("Y"):  # planar configuration
        array = np.moveaxis(array, axes.index("S"), -1)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] < 3:
        raise UserError(f"{name}: expected an RGB TIFF, got shape {array.shape}")
    return _orient(array[:, :, :3], orientation), icc


def read_source(path: Path, data: bytes | None = None) -> tuple[np.ndarray, str]:
    """A source file as H x W x 3 float32 sRGB values in [0, 1], and its colour space in words."""
    data = path.read_bytes() if data is None else data
    if path.suffix.lower() in {".tif", ".tiff"}:
        try:
            array, icc = _read_tiff(data, str(path))
        except UserError:
            raise
        except Exception as error:
            raise UserError(f"{path}: cannot read TIFF ({error})") from error
    else:
        try:
            with Image.open(io.BytesIO(data)) as image:
                icc = image.info.get("icc_profile")
                image = ImageOps.exif_transpose(image)
                array = np.asarray(image.convert("RGB"), dtype=np.uint8)
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise UserError(f"{path}: cannot read image ({error})") from error
    if array.dtype == np.uint8:
        scale, bits = 255.0, 8
    elif array.dtype == np.uint16:
        scale, bits = 65535.0, 16
    else:
        raise UserError(f"{path}: unsupported sample type {array.dtype} (export 8-bit or 16-bit)")
    profile = classify_icc(icc)
    if profile is None:
        space = "prophoto" if bits == 16 else "srgb"
        how = f"untagged {bits}-bit, taken as {'ProPhoto RGB' if space == 'prophoto' else 'sRGB'}"
    elif profile in ("prophoto", "srgb"):
        space = profile
        how = f"{bits}-bit {'ProPhoto RGB' if space == 'prophoto' else 'sRGB'} (ICC profile)"
    else:
        raise UserError(f"{path}: colour profile {profile!r} is not supported: export the image "
                        f"as sRGB or ProPhoto RGB")
    if space == "prophoto":
        return _prophoto_to_srgb_chunked(array, scale), how
    return (array / np.float32(scale)).astype(np.float32), how


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
    """[0, 1] floats -> 8-bit, ``floor(v * 255 + 0.5)``."""
    return np.floor(np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def prepare_image(path: Path, crop: bool, data: bytes | None = None) -> tuple[np.ndarray, str]:
    """One output image (8-bit sRGB) from a source file: short edge 512, centre crop if ``crop``."""
    image, how = read_source(path, data)
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
