"""The demo's models on photos the demo never saw: the FiveK sample's expert-retouched photos,
degraded the demo's way, enhanced by each model of one or more `uegan demo` folders.

The six expert photos of ``../shared/data/fivek-sample`` (val/label and train/exp) are read as the
demo reads its photos (``uegan.apps.demo.load_photo``: 256-pixel short edge, centred crop to multiples
of 16), each degraded twice with the demo's
random degradations (exposure, white balance, gamma, contrast; fixed seed 1234, the same pairs for
every model), enhanced, and measured against the undegraded photo (published protocol, 8-bit,
4-pixel border). Prints, per demo folder and model, the mean input figures and the mean change
(output minus input): PSNR and SSIM should rise, CIEDE2000 fall.

    uegan demo --out /tmp/demo0 --seed 0
    python benchmarks/demo_unseen.py /tmp/demo0 [/tmp/demo1 ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from uegan.apps.demo import load_photo, random_degradation, to_uint8
from uegan.inference import Enhancer
from uegan.metrics import ciede2000, psnr, ssim

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fivek-sample"
SEED = 1234
COPIES = 2


def unseen_pairs(sample: Path = SAMPLE) -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(SEED)
    files = sorted(list((sample / "val" / "label").glob("*.png")) + list((sample / "train" / "exp").glob("*.png")))
    if not files:
        raise SystemExit(f"no FiveK sample photos under {sample}")
    pairs = []
    for path in files:
        original = load_photo(path.name, folder=path.parent)
        for copy in range(COPIES):
            degraded = random_degradation(rng).apply(original)
            pairs.append((f"{path.stem[:5]}-{copy + 1}", to_uint8(degraded), to_uint8(original)))
    return pairs


def scores(image: np.ndarray, original: np.ndarray) -> np.ndarray:
    return np.array([psnr(image, original), ssim(image, original), ciede2000(image, original)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("demo_dirs", nargs="+", type=Path, help="folders written by `uegan demo`")
    args = parser.parse_args()
    pairs = unseen_pairs()
    inputs = np.mean([scores(low, original) for _, low, original in pairs], axis=0)
    print(f"{len(pairs)} unseen pairs; inputs: PSNR {inputs[0]:.2f} dB, SSIM {inputs[1]:.4f}, "
          f"CIEDE2000 {inputs[2]:.2f}\n")
    print(f"{'demo folder':<24} {'seed':>4} {'model':<22} {'dPSNR':>7} {'dSSIM':>8} {'dCIEDE2000':>11}")
    for folder in args.demo_dirs:
        results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
        for model in results["models"]:
            enhancer = Enhancer.load(folder / "run" / model["variant"] / "generator.safetensors", "cpu")
            outputs = np.mean([scores(enhancer(low), original) for _, low, original in pairs], axis=0)
            change = outputs - inputs
            print(f"{str(folder)[-24:]:<24} {results['settings']['seed']:>4} {model['variant']:<22} "
                  f"{change[0]:>+7.2f} {change[1]:>+8.4f} {change[2]:>+11.2f}")


if __name__ == "__main__":
    main()
