"""Training data: two unpaired image sets, each an endless shuffled stream, and a paired
validation set.

Every random choice is a pure function of ``(seed, set, position)``: pass ``k`` over a set visits
its images in a permutation seeded by ``(seed, set, k)``, and the crop and flips of the image at
stream position ``p`` come from a generator seeded by ``(seed, set, p)``. A stream's state is
therefore one integer (images consumed), which makes resuming exact whatever the number of
loader processes, and lets each of N training processes draw its own share of every global
batch.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from uegan.errors import UserError
from uegan.io.budget import check_aspect
from uegan.io.errors import PhotoError
from uegan.io.listing import find_images, images_by_stem
from uegan.io.reader import load_rgb8, probe_size, read_photo
from uegan.training.config import TrainConfig

log = logging.getLogger(__name__)

LOW, HIGH = 0, 1  # stream ids (part of the seeds)
STREAM_NAMES = {LOW: "low", HIGH: "high"}
MAX_LISTED = 20


@dataclass(frozen=True)
class ImageInfo:
    """An image file and its size as shown (EXIF orientation applied)."""

    path: Path
    width: int
    height: int

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)


def read_header(path: Path, decode: bool = False) -> ImageInfo:
    """Size of an image as the one reader sees it; a PhotoError on a file it would refuse.

    From the header only (the reader's budget and format checks), or (``decode``) by decoding
    the whole file, which also finds truncated and corrupt pixel data. Strips (an aspect ratio
    over :data:`uegan.io.budget.MAX_ASPECT_RATIO`) are refused: small ones would be upscaled
    whole before cropping.
    """
    if decode:
        height, width = read_photo(path).rgb.shape[:2]
    else:
        width, height = probe_size(path)
    check_aspect(path, width, height)
    return ImageInfo(path, width, height)


def scan_images(folder: str | Path, what: str, skip_bad: bool = False,
                exclude: Iterable[Path] = ()) -> list[ImageInfo]:
    """Every image under ``folder`` (none inside a folder of ``exclude``), checked.

    Unreadable files are listed in one UserError, or (``skip_bad``) left out with a warning that
    names them; with ``skip_bad`` every file is decoded in full, so that a truncated file is
    found here and not at the step that first draws it.
    """
    good: list[ImageInfo] = []
    bad: list[str] = []
    for path in find_images(folder, exclude):
        try:
            good.append(read_header(path, decode=skip_bad))
        except PhotoError as error:
            bad.append(str(error))
    if bad:
        listed = "\n  ".join(bad[:MAX_LISTED])
        more = f"\n  ... and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
        if not skip_bad:
            raise UserError(f"{len(bad)} of {len(bad) + len(good)} files in the {what} folder "
                            f"{folder} cannot be read as images:\n  {listed}{more}\nfix or remove "
                            f"them, or pass --skip-bad-images to train without them")
        log.warning("skipping %d unreadable image(s) in the %s folder %s:\n  %s%s",
                    len(bad), what, folder, listed, more)
    if not good:
        raise UserError(f"{folder}: no readable images in the {what} folder")
    return good


@dataclass(frozen=True)
class Augmentation:
    """Random crop ``crop_size``, resize to ``image_size`` (bilinear), random flips.

    An image whose short side is below ``crop_size`` is first upscaled (bilinear, aspect kept)
    so that its short side equals ``crop_size``.
    """

    crop_size: int = 512
    image_size: int = 256
    hflip: bool = True
    vflip: bool = True

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """H x W x 3 uint8 -> 3 x S x S float32 in [-1, 1]."""
        pil = Image.fromarray(image)
        width, height = pil.size
        crop = self.crop_size
        if min(width, height) < crop:
            scale = crop / min(width, height)
            width, height = max(crop, round(width * scale)), max(crop, round(height * scale))
            pil = pil.resize((width, height), Image.BILINEAR)
        top = int(rng.integers(0, height - crop + 1))
        left = int(rng.integers(0, width - crop + 1))
        pil = pil.crop((left, top, left + crop, top + crop))
        if crop != self.image_size:
            pil = pil.resize((self.image_size, self.image_size), Image.BILINEAR)
        array = np.asarray(pil, dtype=np.uint8)
        flip_h, flip_v = rng.random() < 0.5, rng.random() < 0.5
        if self.hflip and flip_h:
            array = array[:, ::-1]
        if self.vflip and flip_v:
            array = array[::-1]
        return to_tensor_m11(array)


def to_tensor_m11(array: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> 3 x H x W float32, ``2 * (pixel / 255) - 1``."""
    tensor = torch.from_numpy(np.require(array, requirements=["C", "W"])).permute(2, 0, 1).float()
    return tensor.div_(255).mul_(2).sub_(1)


class ImageStream:
    """An endless sequence over one image set: pass ``k`` is a permutation seeded by ``(seed, k)``."""

    def __init__(self, size: int, seed: int, stream_id: int):
        if size < 1:
            raise ValueError("an image stream needs at least one image")
        self.size = size
        self.seed = seed
        self.stream_id = stream_id
        self._cached: tuple[int, np.ndarray] | None = None

    def permutation(self, pass_index: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != pass_index:
            rng = np.random.default_rng([self.seed, self.stream_id, pass_index, 0])
            self._cached = (pass_index, rng.permutation(self.size))
        return self._cached[1]

    def index_at(self, position: int) -> int:
        """The image index at stream position ``position`` (0-based, over all passes)."""
        pass_index, offset = divmod(position, self.size)
        return int(self.permutation(pass_index)[offset])

    def sample_rng(self, position: int) -> np.random.Generator:
        """The generator of the random crop and flips of the image at ``position``."""
        return np.random.default_rng([self.seed, self.stream_id, position, 1])

    def describe(self, position: int) -> dict[str, int]:
        pass_index, offset = divmod(position, self.size)
        return {"position": position, "pass": pass_index, "index": offset, "size": self.size}


class UnpairedBatches(Dataset):
    """Item ``(low_position, high_position)``: this process's ``batch_size`` low-quality and
    high-quality images starting at those stream positions, augmented."""

    def __init__(self, low: list[ImageInfo], high: list[ImageInfo], batch_size: int,
                 augmentation: Augmentation, seed: int):
        self.files = {LOW: [info.path for info in low], HIGH: [info.path for info in high]}
        self.streams = {LOW: ImageStream(len(low), seed, LOW), HIGH: ImageStream(len(high), seed, HIGH)}
        self.batch_size = batch_size
        self.augmentation = augmentation

    def __len__(self) -> int:  # endless; the sampler decides how many items are drawn
        return 2 ** 62

    def _load(self, stream_id: int, position: int) -> torch.Tensor:
        stream = self.streams[stream_id]
        path = self.files[stream_id][stream.index_at(position)]
        image = load_rgb8(path)  # a UserError naming the file if it cannot be decoded
        return self.augmentation(image, stream.sample_rng(position))

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        low_start, high_start = key
        low = torch.stack([self._load(LOW, low_start + i) for i in range(self.batch_size)])
        high = torch.stack([self._load(HIGH, high_start + i) for i in range(self.batch_size)])
        return low, high


class StepSampler(Sampler):
    """Stream positions of this process's share of each step, from the given starting point.

    Global step ``k`` (counted from the start positions) covers positions
    ``start + k * B * W ... + B * W``; rank ``r`` takes the ``r``-th slice of ``B``.
    """

    def __init__(self, low_start: int, high_start: int, steps: int, batch_size: int,
                 rank: int = 0, world_size: int = 1):
        self.low_start, self.high_start = low_start, high_start
        self.steps = steps
        self.batch_size = batch_size
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[int, int]]:
        per_step = self.batch_size * self.world_size
        offset = self.rank * self.batch_size
        for k in range(self.steps):
            yield self.low_start + k * per_step + offset, self.high_start + k * per_step + offset


def ignore_sigint(_worker_id: int) -> None:
    """Loader processes leave Ctrl-C to the trainer, which saves a checkpoint first."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def step_loader(dataset: UnpairedBatches, sampler: StepSampler, workers: int,
                device: torch.device) -> DataLoader:
    """The batches of ``sampler``, read by ``workers`` processes (0: in this one), which
    leave Ctrl-C to the trainer; the global random generator is left alone."""
    return DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=workers,
                      pin_memory=device.type == "cuda",
                      worker_init_fn=ignore_sigint if workers else None,
                      prefetch_factor=2 if workers else None, generator=torch.Generator())


@dataclass(frozen=True)
class ValidationPair:
    stem: str
    low: Path
    label: Path


def scan_validation(low_folder: str | Path, label_folder: str | Path, skip_bad: bool = False,
                    exclude: Iterable[Path] = ()) -> list[ValidationPair]:
    """Inputs and labels matched by file stem, checked by header (sizes must agree)."""
    low = {info.path.stem: info
           for info in scan_images(low_folder, "validation input", skip_bad, exclude)}
    labels = {info.path.stem: info
              for info in scan_images(label_folder, "validation label", skip_bad, exclude)}
    images_by_stem(info.path for info in low.values())
    images_by_stem(info.path for info in labels.values())
    unmatched = sorted(set(low) - set(labels))
    if unmatched:
        raise UserError(f"{len(unmatched)} validation input(s) in {low_folder} have no label with "
                        f"the same name in {label_folder}: {', '.join(unmatched[:MAX_LISTED])}")
    if len(labels) > len(low):
        log.info("%d validation label(s) without an input are ignored", len(labels) - len(low))
    pairs = []
    for stem in sorted(low):
        a, b = low[stem], labels[stem]
        if (a.width, a.height) != (b.width, b.height):
            raise UserError(f"validation pair {stem!r}: input {a.path} is {a.width}x{a.height} but "
                            f"label {b.path} is {b.width}x{b.height}")
        pairs.append(ValidationPair(stem, a.path, b.path))
    return pairs


def count_upscaled(images: list[ImageInfo], crop_size: int) -> int:
    return sum(1 for info in images if info.short_side < crop_size)


def scan_run_data(config: TrainConfig, run_dir: Path
                  ) -> tuple[list[Path], list[Path], list[ValidationPair]]:
    """The low, high and validation images of a run. A run folder inside a data folder is never
    read as data: its images are the run's own outputs."""
    own = [run_dir]
    low = scan_images(config.low, "low-quality", config.skip_bad_images, exclude=own)
    high = scan_images(config.high, "high-quality", config.skip_bad_images, exclude=own)
    for what, images in (("low-quality", low), ("high-quality", high)):
        upscaled = count_upscaled(images, config.crop_size)
        if upscaled:
            log.info("%d of %d %s images are smaller than the %d px crop and are upscaled first",
                     upscaled, len(images), what, config.crop_size)
    pairs: list[ValidationPair] = []
    if config.val_low is not None:
        pairs = scan_validation(config.val_low, config.val_label, config.skip_bad_images, exclude=own)
    return low, high, pairs
