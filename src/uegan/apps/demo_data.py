"""The demo's data set, made from scikit-image's own sample photos (nothing is downloaded).

The photographs come from scikit-image's data folder (the files its wheel ships, read directly).
No photo is both trained on and measured:

- training photos ``astronaut``, ``rocket`` and ``motorcycle_left`` are each cut into two halves
  along their long side: one half goes to the high-quality set as it is, the other half,
  degraded several times at random, to the low-quality set. The two sets then show similar
  kinds of scenes but never the same pixels, and nothing pairs them: the discriminator can only
  tell them apart by quality, as with FiveK's experts and inputs (with two whole photos per
  set it learns their content instead, and the generator drifts);
- held-out pairs: ``coffee`` and ``chelsea``, each degraded several times at random, with the
  original as the reference.

A *degradation* (:class:`Degradation`) is what a camera's automatic settings get wrong, the way
FiveK's inputs differ from the experts' retouches: under-exposure (a gain in linear light),
a gamma, reduced contrast, and a white-balance cast, each drawn at random within fixed ranges.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from uegan.errors import UserError
from uegan.io.color import srgb_decode, srgb_encode
from uegan.io.images import load_rgb8
from uegan.io.quantize import quantize

# role -> scikit-image data file names (all shipped inside the scikit-image wheel)
TRAINING_PHOTOS = ("astronaut.png", "rocket.jpg", "motorcycle_left.png")
HELD_OUT_PHOTOS = ("coffee.png", "chelsea.png")
PHOTO_SIZE = 256          # short edge of the held-out photos
TRAINING_PHOTO_SIZE = 288 # short edge of the training photos (then cut in halves)
DEFAULT_LOW_COPIES = 8    # random degradations of each low-quality photo
DEFAULT_HELD_OUT_COPIES = 3


def skimage_data_folder() -> Path:
    """scikit-image's bundled data folder (found without importing scikit-image)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("uegan demo takes its photos from scikit-image, which is not installed: "
                        "pip install 'uegan[demo]' (or pip install scikit-image)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    missing = [name for name in TRAINING_PHOTOS + HELD_OUT_PHOTOS if not (folder / name).is_file()]
    if missing:
        raise UserError(f"scikit-image's data folder {folder} lacks {', '.join(missing)}: reinstall "
                        f"scikit-image from its wheel (pip install --force-reinstall scikit-image)")
    return folder


def load_photo(name: str, short_edge: int = PHOTO_SIZE, folder: Path | None = None) -> np.ndarray:
    """A sample photo as float32 RGB in [0, 1], short edge resized to ``short_edge`` and both
    sides cropped (centred) to multiples of 16, as the generator needs."""
    image = Image.fromarray(load_rgb8((folder or skimage_data_folder()) / name))
    width, height = image.size
    scale = short_edge / min(width, height)
    size = (max(16, round(width * scale)), max(16, round(height * scale)))
    image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=None)
    array = np.asarray(image, dtype=np.float32) / 255.0
    h, w = (array.shape[0] // 16) * 16, (array.shape[1] // 16) * 16
    top, left = (array.shape[0] - h) // 2, (array.shape[1] - w) // 2
    return np.ascontiguousarray(array[top:top + h, left:left + w])


@dataclass(frozen=True)
class Degradation:
    """A global photographic degradation, applied in this order:

    exposure (gain ``2 ** exposure_ev`` in linear light, clipped), white balance (gains on the
    red and blue channels in linear light), gamma (``v ** gamma`` on sRGB values), contrast
    (``mean + contrast * (v - mean)`` around the image's mean).
    """

    exposure_ev: float
    red_gain: float
    blue_gain: float
    gamma: float
    contrast: float

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        linear = srgb_decode(np.asarray(rgb, dtype=np.float64))
        linear = linear * (2.0 ** self.exposure_ev)
        linear = linear * np.array([self.red_gain, 1.0, self.blue_gain])
        v = srgb_encode(linear) ** self.gamma
        mean = v.mean()
        return np.clip(mean + self.contrast * (v - mean), 0.0, 1.0).astype(np.float32)

    def describe(self) -> str:
        return (f"exposure {self.exposure_ev:+.2f} EV, gains R {self.red_gain:.2f} B {self.blue_gain:.2f}, "
                f"gamma {self.gamma:.2f}, contrast {self.contrast:.2f}")


# ranges of the random degradations: mostly dark, flat and tinted, like a camera's bad guess
EXPOSURE_EV = (-1.4, -0.4)
RED_GAIN = (0.75, 1.05)
BLUE_GAIN = (0.95, 1.3)
GAMMA = (1.0, 1.4)
CONTRAST = (0.6, 0.9)


def random_degradation(rng: np.random.Generator) -> Degradation:
    """A degradation drawn uniformly within the ranges above."""
    return Degradation(exposure_ev=float(rng.uniform(*EXPOSURE_EV)), red_gain=float(rng.uniform(*RED_GAIN)),
                       blue_gain=float(rng.uniform(*BLUE_GAIN)), gamma=float(rng.uniform(*GAMMA)),
                       contrast=float(rng.uniform(*CONTRAST)))


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> 8-bit by the project's one rounding rule (:func:`uegan.io.quantize.quantize`)."""
    return quantize(rgb, np.uint8)


def save_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb if rgb.dtype == np.uint8 else to_uint8(rgb)).save(path)


@dataclass
class DemoData:
    """Where the demo's data set was written, and how the held-out pairs were degraded."""

    high: Path
    low: Path
    test_low: Path
    test_label: Path
    degradations: dict[str, dict]        # file name -> Degradation fields (low set and held out)


def build_dataset(root: Path, seed: int = 0, low_copies: int = DEFAULT_LOW_COPIES,
                  held_out_copies: int = DEFAULT_HELD_OUT_COPIES, short_edge: int = PHOTO_SIZE) -> DemoData:
    """Write the demo's unpaired training sets and held-out pairs under ``root`` (PNG files)."""
    folder = skimage_data_folder()
    rng = np.random.default_rng(seed)
    data = DemoData(root / "train" / "high", root / "train" / "low", root / "test" / "low",
                    root / "test" / "label", {})
    for index, name in enumerate(TRAINING_PHOTOS):
        photo = load_photo(name, TRAINING_PHOTO_SIZE, folder)
        halves = np.array_split(photo, 2, axis=1 if photo.shape[1] >= photo.shape[0] else 0)
        high, low = halves if index % 2 == 0 else halves[::-1]
        save_png(data.high / f"{Path(name).stem}.png", high)
        for copy in range(low_copies):
            degradation = random_degradation(rng)
            file_name = f"{Path(name).stem}-{copy + 1}.png"
            save_png(data.low / file_name, degradation.apply(low))
            data.degradations[f"train/low/{file_name}"] = asdict(degradation)
    for name in HELD_OUT_PHOTOS:
        photo = load_photo(name, short_edge, folder)
        for copy in range(held_out_copies):
            degradation = random_degradation(rng)
            file_name = f"{Path(name).stem}-{copy + 1}.png"
            save_png(data.test_label / file_name, photo)
            save_png(data.test_low / file_name, degradation.apply(photo))
            data.degradations[f"test/low/{file_name}"] = asdict(degradation)
    (root / "degradations.json").write_text(json.dumps(data.degradations, indent=1) + "\n", encoding="utf-8")
    return data
