"""How well the working-size mode reproduces the direct full-size result (PSNR, dB).

    python benchmarks/transfer_quality.py               # trains a small generator first (cached)
    python benchmarks/transfer_quality.py --steps 0     # skip the trained generator

On the six low-quality FiveK sample photos (``../shared/data/fivek-sample``, 512 x 512 to
512 x 770), for several working sizes (``--max-side``), three operators are applied directly at
full size (the reference) and through the working-size mode (generator at working size, local
affine colour transform carried to full size). Also shown: plain bilinear upsampling of the
working-size output (what the transfer replaces) and the input itself (how strong the operator is).

Operators:
- ``smooth``: a known smooth operator: colour matrix, spatially varying gamma and exposure;
- ``trained``: a UEGAN generator (conv_dim 16) after a short training run: ``--steps`` Adam steps
  of plain paired L1 from the val inputs to their Expert C retouches (128 x 128 crops, batch 4);
  not the full UEGAN objective, which a short CPU run cannot make meaningful;
- ``random``: the generator with PyTorch's default initialisation (untrained, strong and
  high-frequency effects: a stress case).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from uegan.inference import (DEFAULT_GUIDE_EPS, DEFAULT_GUIDE_RADIUS, Enhancer, LocalAffineTransfer,
                             fit_local_affine, working_size)
from uegan.models.generator import Generator, GeneratorConfig

SAMPLE = Path(os.environ.get("UEGAN_SHARED", Path(__file__).resolve().parents[2] / "shared")) \
    / "data" / "fivek-sample"


def load(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)[
        None].float() / 255


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    # on 8-bit values, as the evaluation protocol measures
    a8 = torch.floor(a.clamp(0, 1) * 255 + 0.5)
    b8 = torch.floor(b.clamp(0, 1) * 255 + 0.5)
    mse = ((a8 - b8) ** 2).mean().item()
    return 10 * math.log10(255 ** 2 / mse) if mse > 0 else float("inf")


def smooth_operator(image: torch.Tensor) -> torch.Tensor:
    _, _, height, width = image.shape
    yy = torch.linspace(0, 1, height).view(1, 1, -1, 1)
    xx = torch.linspace(0, 1, width).view(1, 1, 1, -1)
    matrix = torch.tensor([[0.85, 0.12, 0.03], [0.05, 0.9, 0.05], [0.02, 0.1, 0.88]])
    mixed = torch.einsum("ij,njhw->nihw", matrix, image).clamp(0, 1)
    gamma = 0.75 + 0.3 * xx * (1 - 0.5 * yy)
    gain = 1.1 + 0.15 * torch.sin(math.pi * yy) * torch.cos(math.pi * xx)
    return (mixed.clamp_min(1e-6) ** gamma * gain).clamp(0, 1)


def train_generator(steps: int, cache: Path) -> Generator:
    generator = Generator(GeneratorConfig(conv_dim=16))
    if cache.exists():
        generator.load_state_dict(torch.load(cache, weights_only=True))
        return generator.eval()
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(conv_dim=16))
    pairs = [(load(p), load(SAMPLE / "val" / "label" / p.name))
             for p in sorted((SAMPLE / "val" / "raw").glob("*.png"))]
    optimiser = torch.optim.Adam(generator.parameters(), lr=5e-4, betas=(0.9, 0.999))
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for step in range(steps):
        inputs, targets = [], []
        for _ in range(4):
            low, high = pairs[rng.integers(len(pairs))]
            top = rng.integers(0, low.shape[2] - 128 + 1)
            left = rng.integers(0, low.shape[3] - 128 + 1)
            inputs.append(low[:, :, top:top + 128, left:left + 128])
            targets.append(high[:, :, top:top + 128, left:left + 128])
        x = torch.cat(inputs) * 2 - 1
        y = torch.cat(targets) * 2 - 1
        loss = (generator(x) - y).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"  training step {step}: L1 {loss.item():.4f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    torch.save(generator.state_dict(), cache)
    return generator.eval()


def transfer(operator, image: torch.Tensor, max_side: int, radius: int, eps: float
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """(working-size mode result, bilinear upsampling of the working-size output)."""
    _, _, height, width = image.shape
    size = working_size(height, width, max_side)
    small = F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)
    small_out = operator(small)
    coefficients = fit_local_affine(small, small_out, radius, eps)
    result = LocalAffineTransfer(coefficients, height, width).apply(image[0], 0)[None]
    upsampled = F.interpolate(small_out, size=(height, width), mode="bilinear",
                              align_corners=False)
    return result.clamp(0, 1), upsampled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--max-side", default="96,128,256")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--no-sweep", action="store_true", help="skip the radius / eps sweep")
    parser.add_argument("--work", type=Path,
                        default=Path(tempfile.gettempdir()) / "uegan-bench-transfer")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    images = [load(p) for p in sorted((SAMPLE / "train" / "raw").glob("*.png"))
              + sorted((SAMPLE / "val" / "raw").glob("*.png"))]
    print(f"{len(images)} photos: {[tuple(i.shape[2:]) for i in images]}")

    operators = {"smooth": smooth_operator}
    generators = {}
    torch.manual_seed(1)
    generators["random"] = Generator(GeneratorConfig(conv_dim=16)).eval()
    if args.steps:
        generators["trained"] = train_generator(args.steps, args.work / f"trained-{args.steps}.pt")
    for name, generator in generators.items():
        operators[name] = Enhancer(generator, max_side=None).generate

    sides = [int(s) for s in args.max_side.split(",")]
    radius, eps = DEFAULT_GUIDE_RADIUS, DEFAULT_GUIDE_EPS
    print(f"\nPSNR against the direct full-size result (dB; mean over photos; radius {radius}, "
          f"eps {eps:g})")
    print(f"{'operator':<9} {'max side':>8} {'transfer':>9} {'bilinear':>9} {'input':>7}")
    with torch.inference_mode():
        for name, operator in operators.items():
            direct = [operator(image) for image in images]
            for side in sides:
                scores = np.array([[psnr(result, reference), psnr(upsampled, reference),
                                    psnr(image, reference)]
                                   for image, reference in zip(images, direct)
                                   for result, upsampled in [transfer(operator, image, side,
                                                                      radius, eps)]])
                mean = scores.mean(axis=0)
                print(f"{name:<9} {side:>8} {mean[0]:>9.2f} {mean[1]:>9.2f} {mean[2]:>7.2f}",
                      flush=True)

        if args.no_sweep:
            return
        sweep_side = sides[len(sides) // 2]
        print("\nsweep of the transfer's radius (working-size pixels) and eps, max side "
              f"{sweep_side}, PSNR dB mean over photos")
        sweep_names = [n for n in ("trained", "random") if n in operators] + ["smooth"]
        for name in sweep_names:
            operator = operators[name]
            direct = [operator(image) for image in images]
            for sweep_radius in (1, 2, 4, 8):
                row = []
                for sweep_eps in (1e-5, 1e-4, 1e-3, 1e-2):
                    row.append(np.mean([psnr(transfer(operator, image, sweep_side, sweep_radius,
                                                      sweep_eps)[0], reference)
                                        for image, reference in zip(images, direct)]))
                print(f"{name:<9} r={sweep_radius}: " + "  ".join(
                    f"eps {e:g}: {v:6.2f}" for e, v in zip((1e-5, 1e-4, 1e-3, 1e-2), row)),
                    flush=True)


if __name__ == "__main__":
    main()
