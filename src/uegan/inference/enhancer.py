"""Enhancing photos with a trained UEGAN generator.

:class:`Enhancer` wraps a generator loaded from any checkpoint format and applies it to images
of any size:

- Faithful: images whose sides are multiples of 16 go through the generator unchanged
  (``x = 2 * p / 255 - 1`` in, ``floor(((y + 1) / 2).clamp(0, 1) * 255 + 0.5)`` out, as the
  published tester writes them). Other sides are reflect-padded at the bottom and right to the
  next multiple of 16 and cropped back; tiny images (a side under 16) too.
- Large photos, default mode: the generator runs at a working size (long side ``max_side``,
  768 by default: the scale of the photos the published model is trained and tested on, FiveK
  exports with a short edge of 512, so 512 x 768 and smaller run directly) and its effect is
  carried to full resolution by a local affine colour transform (``uegan.inference.transfer``).
- ``full_res=True``: the generator runs on the whole image. Above ``tile`` x ``tile`` x 4
  pixels it runs tile by tile and is still exact (``uegan.models.tiling``); a generator that
  fails the tiling's one-time self-check runs whole.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from uegan.checkpoints import load_generator
from uegan.errors import UserError
from uegan.inference.acceleration import InferenceAcceleration, prepare_generator_for_inference
from uegan.inference.files import enhance_files
from uegan.inference.padding import pad_reflect, padded_size
from uegan.inference.transfer import (DEFAULT_GUIDE_EPS, DEFAULT_GUIDE_RADIUS, LocalAffineTransfer,
                                      fit_local_affine)
from uegan.io.photo import DEFAULT_MAX_PIXELS, DEFAULT_QUALITY, srgb_profile_bytes
from uegan.io.reader import photo_from_image
from uegan.models import tiling
from uegan.models.generator import DIVISOR, Generator
from uegan.models.tiling import DEFAULT_TILE
from uegan.model_card import ModelCard
from uegan.pretrained import load_pretrained
from uegan.runtime import inference_precision

log = logging.getLogger(__name__)

DEFAULT_MAX_SIDE = 768
STRIP_ROWS = 256

def quantize(values: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """[0, 1] floats -> integers as the published tester rounds: floor(v * max + 0.5)."""
    if dtype == np.uint16:
        result = values.clamp(0.0, 1.0).mul_(65535.0).add_(0.5).floor_()
        return result.to(torch.int32).cpu().numpy().astype(np.uint16)
    result = values.clamp(0.0, 1.0).mul_(255.0).add_(0.5).floor_()
    return result.to(torch.uint8).cpu().numpy()


def working_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _to_float_chw(rgb: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 / uint16 / float in [0, 1] -> 3 x H x W float32 (a view where possible)."""
    with warnings.catch_warnings():  # read-only arrays (from PIL) are fine: never written to
        warnings.simplefilter("ignore", UserWarning)
        tensor = torch.from_numpy(np.asarray(rgb)).permute(2, 0, 1)
    if rgb.dtype == np.uint8:
        return tensor.float().div_(255.0)
    if rgb.dtype == np.uint16:
        return tensor.float().div_(65535.0)
    return tensor.float()


class Enhancer:
    """A generator ready to enhance images of any size.

    ``Enhancer.load(checkpoint, device="cpu")`` reads any supported checkpoint (published
    ``.pth``, a training checkpoint of this project, a safetensors export). Calling the enhancer
    on an image returns the same kind of image:

    - a PIL image -> a PIL image, read as ``uegan enhance`` reads a file: its EXIF orientation
      applied (the result is upright) and its ICC profile converted to sRGB; the result is RGB
      (alpha kept untouched when the input has one) and carries the sRGB profile and the EXIF
      block (orientation 1) in ``result.info``; pass them on when saving
      (``result.save(path, icc_profile=result.info["icc_profile"], exif=result.info.get("exif",
      b""))``), or let :meth:`enhance_file` do it all;
    - a numpy array H x W x 3 (or x 4 with alpha, or H x W gray), ``uint8``, ``uint16`` or float
      in [0, 1] -> the same dtype, H x W x 3 (x 4 with alpha);
    - a torch tensor 3 x H x W or N x 3 x H x W, float in [0, 1] or ``uint8`` -> the same shape,
      dtype and device.

    Three lines from a checkpoint to an enhanced file::

        from uegan import Enhancer
        enhancer = Enhancer.load("generator.safetensors")
        enhancer.enhance_file("photo.jpg", "photo-enhanced.jpg")

    ``max_side``: long side of the working size (``None``: always full resolution);
    ``full_res``: run the generator on the whole image whatever its size (tiled above
    ``tile`` x ``tile`` x 4 pixels, exact).
    ``precision``: ``auto`` (the default) runs the generator in bf16 where the device computes
    bf16 natively (a CPU with AVX512-BF16 or AMX, a CUDA GPU; :func:`uegan.runtime.bf16_is_native`)
    and in fp32 elsewhere; ``fp32`` is the published computation. The bf16 output is within one
    8-bit level of fp32 on at least 99.9 % of the values of real photos (README, "Speed and
    precision"); ``bf16`` / ``fp16`` force one.
    ``acceleration``: an optional ``uegan.inference.InferenceAcceleration`` (torch.compile,
    exact fp32 rewrites, bf16/fp16 autocast) for the untiled forward pass; it replaces
    ``precision``; the generator is prepared in place.
    """

    def __init__(self, generator: Generator, device: str | torch.device = "cpu", *,
                 max_side: int | None = DEFAULT_MAX_SIDE, full_res: bool = False,
                 tile: int = DEFAULT_TILE, guide_radius: int = DEFAULT_GUIDE_RADIUS,
                 guide_eps: float = DEFAULT_GUIDE_EPS, variant: str | None = None,
                 source_format: str | None = None, acceleration: InferenceAcceleration | None = None,
                 precision: str = "auto"):
        if max_side is not None and max_side < DIVISOR:
            raise UserError(f"max side {max_side} is too small (at least {DIVISOR})")
        if tile < 4 * DIVISOR or tile % DIVISOR:
            raise UserError(f"tile {tile} must be a multiple of {DIVISOR}, at least {4 * DIVISOR}")
        self.device = torch.device(device)
        self.generator = generator.to(self.device).eval()
        self._forward = self.generator
        if acceleration is None:
            self.precision = inference_precision(precision, self.device)
            if self.precision != "fp32":
                acceleration = InferenceAcceleration(precision=self.precision)
        else:
            self.precision = acceleration.precision
        if acceleration is not None:
            self._forward = prepare_generator_for_inference(self.generator, acceleration)
        self.max_side = max_side
        self.full_res = full_res
        self.tile = tile
        self.guide_radius = guide_radius
        self.guide_eps = guide_eps
        self.variant = variant
        self.source_format = source_format
        self._tiling_ok: bool | None = None  # checked once, when a tiled forward is first needed
        self.card: str | None = None                # the model card (from_pretrained)
        self.card_facts: ModelCard | None = None

    @classmethod
    def load(cls, checkpoint: str | Path, device: str | torch.device = "cpu",
             **options: Any) -> "Enhancer":
        loaded = load_generator(checkpoint, device)
        return cls(loaded.generator, device, variant=loaded.variant,
                   source_format=loaded.source_format, **options)

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | Path, device: str | torch.device = "cpu", *,
                        revision: str | None = None, cache_dir: str | Path | None = None,
                        **options: Any) -> "Enhancer":
        """An enhancer from a pretrained folder (``model.safetensors`` + ``config.json`` +
        ``README.md``, as ``uegan export CKPT --folder DIR`` writes it), a run folder, any
        checkpoint file, or a Hugging Face Hub id ``owner/name`` (needs ``huggingface_hub``;
        ``HF_HUB_OFFLINE=1``: its cache only). ``enhancer.card``: the model card's text (None
        when there is none); ``enhancer.card_facts``: its facts
        (:class:`uegan.model_card.ModelCard`).

            enhancer = Enhancer.from_pretrained("uegan-fivek/")
            print(enhancer.card)
        """
        found = load_pretrained(path_or_repo_id, device, revision=revision, cache_dir=cache_dir)
        enhancer = cls(found.loaded.generator, device, variant=found.loaded.variant,
                       source_format=found.loaded.source_format, **options)
        enhancer.card, enhancer.card_facts = found.card_text, found.loaded.card
        return enhancer

    # -- the generator on [0, 1] images ----------------------------------------------------------

    @torch.inference_mode()
    def generate(self, x: torch.Tensor) -> torch.Tensor:
        """The generator on N x 3 x H x W in [0, 1] (any size): padded, run, cropped, in [0, 1]."""
        _, _, height, width = x.shape
        padded_h, padded_w = padded_size(height, width)
        x = pad_reflect(x.to(self.device, torch.float32), padded_h, padded_w)
        x = 2 * x - 1
        if padded_h * padded_w > 4 * self.tile * self.tile and self._tiling_checked():
            y = tiling.tiled_forward(self.generator, x, self.tile)
        else:
            y = self._forward(x)
        return ((y[:, :, :height, :width] + 1) / 2).clamp(0, 1)

    def _tiling_checked(self) -> bool:
        if self._tiling_ok is None:
            self._tiling_ok = tiling.tiling_matches(self.generator, self.device)
            if not self._tiling_ok:
                log.warning("this generator cannot be split into tiles exactly; running large "
                            "images whole (more memory)")
        return self._tiling_ok

    def uses_transfer(self, height: int, width: int) -> bool:
        return (not self.full_res and self.max_side is not None
                and max(height, width) > self.max_side)

    @torch.inference_mode()
    def fit_transfer(self, image: torch.Tensor) -> LocalAffineTransfer:
        """Run the generator at working size on 1 x 3 x H x W in [0, 1] and fit the transfer."""
        small = self._generator_input(image)
        return self._transfer(small, self.generate(small), *image.shape[-2:])

    @torch.inference_mode()
    def enhance_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W float in [0, 1] -> the enhanced images, same shape, on the same device."""
        _, _, height, width = x.shape
        if not self.uses_transfer(height, width):
            return self.generate(x).to(x.device)
        results = []
        for sample in x:
            transfer = self.fit_transfer(sample[None])
            rows = [transfer.apply(sample[:, r0:r0 + STRIP_ROWS].float(), r0).clamp(0, 1).to(x.device)
                    for r0 in range(0, height, STRIP_ROWS)]
            results.append(torch.cat(rows, dim=1))
        return torch.stack(results)

    @torch.inference_mode()
    def enhance_array(self, rgb: np.ndarray, out_dtype: np.dtype | type | None = None
                      ) -> np.ndarray:
        """H x W x 3 (uint8, uint16 or float in [0, 1]) -> H x W x 3 of ``out_dtype`` (default:
        the input's). Large photos are processed in strips: memory stays near two copies of the
        image as float."""
        return self.enhance_arrays([rgb], out_dtype)[0]

    @torch.inference_mode()
    def enhance_arrays(self, images: Sequence[np.ndarray],
                       out_dtype: np.dtype | type | Sequence[np.dtype | type] | None = None
                       ) -> list[np.ndarray]:
        """Several photos, each as :meth:`enhance_array` enhances it; the photos whose generator
        input has one size (the working size of large photos, or the same size) share one
        forward pass, which fills a GPU better (``uegan enhance --batch-size``). ``out_dtype``:
        one for all, or one per image."""
        if isinstance(out_dtype, (list, tuple)):  # one per image
            return self._enhance_arrays(images, [np.dtype(dtype) for dtype in out_dtype])
        return self._enhance_arrays(images, [np.dtype(out_dtype or rgb.dtype) for rgb in images])

    def _enhance_arrays(self, images: Sequence[np.ndarray], dtypes: Sequence[np.dtype]
                        ) -> list[np.ndarray]:
        photos: list[torch.Tensor | None] = [_to_float_chw(rgb)[None] for rgb in images]
        inputs: list[torch.Tensor | None] = [self._generator_input(photo) for photo in photos]
        outputs: list[torch.Tensor | None] = list(self._generate_grouped(inputs))
        results = []
        for index, dtype in enumerate(dtypes):
            image, small, enhanced = photos[index], inputs[index], outputs[index]
            # drop the lists' references: each photo's float copies go once it is finished
            photos[index] = inputs[index] = outputs[index] = None
            height, width = image.shape[-2:]
            if small is image:  # the generator ran at full size: its output is the result
                del image, small
                results.append(self._to_array(enhanced[0], dtype))
            else:
                transfer = self._transfer(small, enhanced, height, width)
                results.append(self._to_array(image[0], dtype, transfer))
        return results

    def _generator_input(self, image: torch.Tensor) -> torch.Tensor:
        """What the generator sees of 1 x 3 x H x W: the photo, or its working-size copy."""
        height, width = image.shape[-2:]
        if not self.uses_transfer(height, width):
            return image
        small_h, small_w = working_size(height, width, self.max_side)
        return F.interpolate(image.to(self.device, torch.float32), size=(small_h, small_w),
                             mode="bilinear", antialias=True, align_corners=False)

    def _generate_grouped(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """The generator on each input; inputs of one size that are not tiled run as one batch."""
        outputs: list[torch.Tensor | None] = [None] * len(inputs)
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, x in enumerate(inputs):
            padded_h, padded_w = padded_size(*x.shape[-2:])
            tiled = padded_h * padded_w > 4 * self.tile * self.tile
            groups.setdefault((index,) if tiled else tuple(x.shape), []).append(index)
        for members in groups.values():
            batch = self.generate(torch.cat([inputs[i] for i in members]))
            for position, index in enumerate(members):
                outputs[index] = batch[position:position + 1]
        return outputs  # type: ignore[return-value]

    def _transfer(self, small: torch.Tensor, enhanced: torch.Tensor, height: int, width: int
                  ) -> LocalAffineTransfer:
        """The generator's effect at the working size, fitted to be applied at full size."""
        coefficients = fit_local_affine(small, enhanced, self.guide_radius, self.guide_eps)
        return LocalAffineTransfer(coefficients, height, width)

    def _to_array(self, image: torch.Tensor, out_dtype: np.dtype,
                  transfer: LocalAffineTransfer | None = None) -> np.ndarray:
        """3 x H x W in [0, 1] (through ``transfer`` when given) as H x W x 3 of ``out_dtype``,
        in strips of rows."""
        height, width = image.shape[-2:]
        out = np.empty((height, width, 3), dtype=out_dtype)
        for r0 in range(0, height, STRIP_ROWS):
            strip = image[:, r0:r0 + STRIP_ROWS]
            if transfer is not None:
                strip = transfer.apply(strip, r0)
            out[r0:r0 + STRIP_ROWS] = self._from_float(strip.permute(1, 2, 0), out_dtype)
        return out

    @staticmethod
    def _from_float(values: torch.Tensor, dtype: np.dtype) -> np.ndarray:
        if dtype in (np.uint8, np.uint16):
            return quantize(values, dtype)
        return values.clamp(0, 1).cpu().numpy().astype(dtype)

    # -- any kind of image -------------------------------------------------------------------------

    def __call__(self, image: Any) -> Any:
        if isinstance(image, Image.Image):
            return self._enhance_pil(image)
        if isinstance(image, np.ndarray):
            return self._enhance_numpy(image)
        if isinstance(image, torch.Tensor):
            return self._enhance_torch(image)
        raise TypeError(f"cannot enhance {type(image)}: pass a PIL image, a numpy "
                        f"array or a torch tensor")

    def _enhance_pil(self, image: Image.Image) -> Image.Image:
        photo = photo_from_image(image)
        result = Image.fromarray(self.enhance_array(photo.rgb, np.uint8), "RGB")
        if photo.alpha is not None:
            result.putalpha(Image.fromarray(photo.alpha, "L"))
        result.info["icc_profile"] = srgb_profile_bytes()
        if photo.exif:
            result.info["exif"] = photo.exif
        return result

    # -- files -----------------------------------------------------------------------------------

    def enhance_file(self, source: str | Path, out: str | Path, *, format: str | None = None,
                     bit_depth: int = 8, quality: int = DEFAULT_QUALITY, overwrite: bool = False,
                     max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Path:
        """Enhance the photo file ``source`` into ``out``, as ``uegan enhance`` does for each file.

        Read through the project's reader (EXIF orientation, ICC profile to sRGB, 16-bit, alpha,
        ``max_pixels``), enhanced, written in ``format`` (default: from ``out``'s suffix) tagged
        sRGB with the EXIF block kept (orientation 1); ``bit_depth`` 16 where the format holds it
        (PNG, TIFF). Written atomically; an existing ``out`` is replaced only with ``overwrite``.
        A :class:`~uegan.errors.UserError` names the file on any problem. Returns ``out``.
        """
        for _source, _out, error in self.enhance_files([(source, out)], format=format,
                                                     bit_depth=bit_depth, quality=quality,
                                                     overwrite=overwrite, max_pixels=max_pixels):
            if error is not None:
                raise error
        return Path(out)

    def enhance_files(self, pairs: Iterable[tuple[str | Path, str | Path]], *, batch_size: int = 1,
                      format: str | None = None, bit_depth: int = 8,
                      quality: int = DEFAULT_QUALITY, overwrite: bool = False,
                      max_pixels: int | None = DEFAULT_MAX_PIXELS
                      ) -> Iterator[tuple[Path, Path, Exception | None]]:
        """:meth:`enhance_file` for each ``(source, out)`` pair, ``batch_size`` photos at a time
        (:meth:`enhance_arrays`: photos with one generator-input size share a forward pass).
        Yields ``(source, out, None)`` for each file written and ``(source, out, error)`` for
        each that failed; one bad file never stops the others."""
        return enhance_files(self, pairs, batch_size=batch_size, format=format,
                             bit_depth=bit_depth, quality=quality, overwrite=overwrite,
                             max_pixels=max_pixels)

    def _enhance_numpy(self, array: np.ndarray) -> np.ndarray:
        if array.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
            raise TypeError(f"unsupported array dtype {array.dtype} (uint8, uint16 or float)")
        if array.ndim == 2:
            array = array[..., None]
        if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
            raise ValueError(f"expected an H x W x 3 image (or x 4, or H x W), got {array.shape}")
        alpha = array[..., 3:] if array.shape[-1] == 4 else None
        rgb = np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array[..., :3]
        result = self.enhance_array(np.ascontiguousarray(rgb), array.dtype)
        return np.concatenate([result, alpha], axis=-1) if alpha is not None else result

    def _enhance_torch(self, tensor: torch.Tensor) -> torch.Tensor:
        batched = tensor.ndim == 4
        if tensor.ndim not in (3, 4) or tensor.shape[-3] != 3:
            raise ValueError(f"expected 3 x H x W or N x 3 x H x W, got {tuple(tensor.shape)}")
        x = tensor if batched else tensor[None]
        if tensor.dtype == torch.uint8:
            y = self.enhance_tensor(x.float() / 255.0)
            y = torch.floor(y * 255.0 + 0.5).to(torch.uint8)
        elif tensor.is_floating_point():
            y = self.enhance_tensor(x.float()).to(tensor.dtype)
        else:
            raise TypeError(f"unsupported tensor dtype {tensor.dtype} (float in [0, 1] or uint8)")
        y = y.to(tensor.device)
        return y if batched else y[0]
