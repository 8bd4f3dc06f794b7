"""How far bf16 enhancement is from fp32, in 8-bit levels, on real photos.

    python benchmarks/bf16_quality.py [--checkpoint CKPT] [--photos DIR ...]

For every photo (default: the FiveK sample of ../shared and scikit-image's sample photos): the
``Enhancer`` in fp32 and in bf16, at the working size (the default, long side 768, larger photos
through the colour transfer) and at full size (``full_res``; photos upscaled 2x so that full size
differs from working size). Prints per set the largest difference and the fraction of 8-bit
values that differ by more than one level (the README's bound: at most 0.1 %). Without
``--checkpoint`` the generator is the published layout with the reference files' random weights.
Where bf16 is not native (no AVX512-BF16 / AMX) it is emulated: slower, the same rounding.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from uegan.inference import Enhancer  # noqa: E402
from uegan.io.reader import load_rgb8  # noqa: E402
from uegan.runtime import bf16_is_native, cpu_flags  # noqa: E402

SHARED = next((p for p in (REPO.parent / "shared", Path("/work/shared")) if p.is_dir()), None)


def sample_photos() -> list[tuple[str, np.ndarray]]:
    photos = []
    if SHARED is not None:
        for path in sorted((SHARED / "data" / "fivek-sample").rglob("*")):
            if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff"):
                photos.append((f"fivek/{path.parent.name}/{path.name}", load_rgb8(path)))
    try:
        from skimage import data
        for name in ("astronaut", "chelsea", "coffee", "rocket", "cat"):
            photos.append((f"skimage/{name}", getattr(data, name)()))
    except ImportError:
        pass
    return photos


def compare(fp32: Enhancer, bf16: Enhancer, image: np.ndarray) -> tuple[int, int, int]:
    a = fp32.enhance_array(image).astype(np.int16)
    b = bf16.enhance_array(image).astype(np.int16)
    difference = np.abs(a - b)
    return int(difference.max()), int((difference > 1).sum()), difference.size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", help="generator checkpoint (default: random published layout)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.checkpoint is None:
        state = torch.load(SHARED / "golden" / "generator_forward.pt", weights_only=False)["state_dict"]
        checkpoint = Path("/tmp/uegan-bf16-quality.pth")
        torch.save({"G_net": state}, checkpoint)
    else:
        checkpoint = Path(args.checkpoint)
    flags = cpu_flags()
    print(f"# {platform.processor() or platform.machine()}, bf16 native: "
          f"{bf16_is_native(torch.device('cpu'))} (avx512_bf16 {'avx512_bf16' in flags}, "
          f"amx_bf16 {'amx_bf16' in flags}, avx512f {'avx512f' in flags}), torch {torch.__version__}")
    photos = sample_photos()
    print("| set | photos | values | largest difference (levels) | values > 1 level | fraction |")
    print("|---|---|---|---|---|---|")
    for mode, options, scale in (("working size", {}, 1), ("full size (2x, full_res)", {"full_res": True}, 2)):
        fp32 = Enhancer.load(checkpoint, precision="fp32", **options)
        bf16 = Enhancer.load(checkpoint, precision="bf16", **options)
        worst, over, total, start = 0, 0, 0, time.perf_counter()
        for name, image in photos:
            if scale != 1:
                image = np.asarray(Image.fromarray(image).resize(
                    (image.shape[1] * scale, image.shape[0] * scale), Image.BICUBIC))
            w, o, t = compare(fp32, bf16, image)
            worst, over, total = max(worst, w), over + o, total + t
        print(f"| {mode} | {len(photos)} | {total:,} | {worst} | {over:,} | {over / total:.2e} |"
              f"  ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
