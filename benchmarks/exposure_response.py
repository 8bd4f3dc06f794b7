"""How a trained generator's correction depends on the input's exposure, and how much of it is
global (a function of each pixel's own value) rather than local (following texture).

The hypothesis tested (issue "Photos that look better"): the published generator sees a photo
only through instance-normalised features, so its residual cannot follow the photo's overall
exposure and is learnt as a texture-driven local change instead. For each generator and each
held-out photo, the original is rendered at several exposures (a gain in linear light, nothing
else) and enhanced; per exposure this prints

- ``dY``: mean change of luminance (output - input, 0-255 scale): a global corrector brightens
  dark inputs more than bright ones, so dY falls as the exposure rises;
- ``global``: the share of the residual's variance explained by a per-channel function of the
  input value (the mean residual in each of 64 value bins): 1.0 for any tone curve, lower when
  the change depends on where a pixel is, not only on its value;
- ``PSNR``: the output's PSNR against the original (the input's is infinite at 0 EV).

    python benchmarks/exposure_response.py uegan-demo/run/uegan/generator.safetensors \
        uegan-demo/run/uegan-curve/generator.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from uegan.apps.demo import HELD_OUT_PHOTOS, Degradation, load_photo, to_uint8
from uegan.inference import Enhancer
from uegan.metrics import psnr

EXPOSURES = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5)
LUMA = np.array([0.299, 0.587, 0.114])


def global_share(source: np.ndarray, residual: np.ndarray, bins: int = 64) -> float:
    """R^2 of the residual predicted, per channel, by the mean residual of its input-value bin."""
    explained = total = 0.0
    for c in range(3):
        values = source[..., c].ravel()
        change = residual[..., c].ravel()
        index = np.minimum((values * bins).astype(int), bins - 1)
        counts = np.bincount(index, minlength=bins)
        means = np.bincount(index, weights=change, minlength=bins) / np.maximum(counts, 1)
        explained += ((change - means[index]) ** 2).sum()
        total += ((change - change.mean()) ** 2).sum()
    return 1.0 - explained / max(total, 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("generators", nargs="+", type=Path, help="generator files (any format uegan loads)")
    args = parser.parse_args()
    photos = {Path(name).stem: load_photo(name) for name in HELD_OUT_PHOTOS}
    print(f"{'generator':<34} {'photo':<8} " + " ".join(f"{ev:>+17.1f}" for ev in EXPOSURES))
    print(f"{'':<34} {'':<8} " + " ".join(f"{'dY glob  PSNR':>17}" for _ in EXPOSURES))
    summary = []
    for path in args.generators:
        enhancer = Enhancer.load(path, "cpu")
        label = str(path.parent)[-34:]
        shares, slopes = [], []
        for stem, original in photos.items():
            reference = to_uint8(original)
            cells, changes = [], []
            for ev in EXPOSURES:
                degraded = to_uint8(Degradation(ev, 1.0, 1.0, 1.0, 1.0).apply(original))
                enhanced = enhancer(degraded)
                source = degraded.astype(np.float64) / 255
                residual = enhanced.astype(np.float64) / 255 - source
                d_luma = float((residual @ LUMA).mean() * 255)
                share = global_share(source, residual)
                quality = psnr(enhanced, reference)
                cells.append(f"{d_luma:>+6.1f} {share:>4.2f} {quality:>5.1f}")
                changes.append(d_luma)
                shares.append(share)
            slopes.append(np.polyfit(EXPOSURES, changes, 1)[0])
            print(f"{label:<34} {stem:<8} " + " ".join(cells))
        summary.append((label, float(np.mean(slopes)), float(np.median(shares))))
    print("\nper generator: slope of dY against exposure (levels per EV; negative: darker inputs "
          "are brightened more) and median global share")
    for label, slope, share in summary:
        print(f"{label:<34} slope {slope:+6.2f}   global share {share:.2f}")


if __name__ == "__main__":
    main()
