"""Time the generator's forward pass on one image (enhancement), variants side by side.

    python benchmarks/enhance.py --size 512 --conv-dim 32 --runs 5 --rounds 4 \
        --variants eager,compile,fast

Each variant is a ``+``-joined list of options of ``uegan.inference.InferenceAcceleration``
(``eager`` = none: the plain generator under ``torch.inference_mode``):

    compile          torch.compile with the weights frozen into the graph
    nofreeze         with compile: keep the weights as graph inputs (no inductor freezing)
    channels_last    NHWC generator and input
    cfu              conv-first upsampling (1x1 conv before the bilinear x2)
    skip_gam         the published GAM without its inert global branch
    bf16, fp16       autocast precision
    max_autotune     compile mode "max-autotune"
    dynamic          with compile: the shape-generic graph of ``uegan enhance --fast`` (the
                     warm-up calls a second size first, which makes torch switch to it)
    fast             InferenceAcceleration.fast(): compile + cfu + skip_gam

The generator has random weights (PyTorch's default initialisation: activations of a realistic
size), the input is a smooth random image; every variant's output is compared with the eager
output (max abs difference, printed). Timing as in ``train_step.py``: one process per variant,
warm-up excluded (the first call, which includes compilation, is reported on its own), interleaved
rounds, median of all timed calls. Memory: resident set size high-water mark during the timed
calls (CPU) or ``torch.cuda.max_memory_allocated`` (CUDA). The last line is
``median_s=<seconds per image>`` of the last variant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

PUBLISHED_IMAGE_S = 0.54  # published UEGAN generator, 2-core CPU, 512 x 512, fp32 eager (issue 7)
TOKENS: dict[str, dict[str, Any]] = {
    "compile": {"compile": True}, "nofreeze": {"freeze_weights": False},
    "channels_last": {"channels_last": True}, "cfu": {"conv_first_upsample": True},
    "skip_gam": {"skip_inert_gam": True}, "max_autotune": {"compile_mode": "max-autotune"},
    "dynamic": {"dynamic": None}, "bf16": {"precision": "bf16"}, "fp16": {"precision": "fp16"},
}


def parse_variant(name: str):
    from uegan.inference import InferenceAcceleration

    return h.options_from_variant(name, InferenceAcceleration, TOKENS, InferenceAcceleration.fast)


class EnhanceWorker:
    def setup(self, variant: str, conv_dim: int, size: int, batch: int, device: str,
              threads: int | None, seed: int, check: bool = True) -> dict[str, Any]:
        import copy

        import torch

        from uegan.inference import prepare_generator_for_inference
        from uegan.models import Generator, GeneratorConfig

        options = parse_variant(variant)
        if threads is not None:
            torch.set_num_threads(threads)
        self.torch = torch
        self.device = torch.device(device)
        torch.manual_seed(seed)
        generator = Generator(GeneratorConfig(conv_dim)).to(self.device).eval()
        reference = copy.deepcopy(generator) if check else None
        self.model = prepare_generator_for_inference(generator, options)
        coarse = torch.rand(batch, 3, max(1, size // 16), max(1, size // 16))
        x = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear",
                                            align_corners=False)
        self.x = ((x + 0.05 * torch.randn_like(x)).clamp(0, 1) * 2 - 1).to(self.device)
        self.reference = reference
        self.dynamic = options.compile and options.dynamic is None
        self.sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        return {"threads": torch.get_num_threads(), "options": repr(options)}

    def _call(self) -> None:
        with self.torch.inference_mode():
            self.out = self.model(self.x)

    def warmup(self, count: int) -> dict[str, Any]:
        first = h.timed(self._call, self.sync)
        if self.dynamic:
            # a second size makes torch.compile switch to its shape-generic graph, the one a
            # folder of photos of different sizes runs on (uegan enhance --fast)
            size = self.x.shape[-1] + 16
            with self.torch.inference_mode():
                first += h.timed(lambda: self.model(self.x.new_zeros(*self.x.shape[:2], size, size)),
                                 self.sync)
        rest = [h.timed(self._call, self.sync) for _ in range(max(0, count - 1))]
        error = None
        if self.reference is not None:
            with self.torch.inference_mode():
                expected = self.reference(self.x)
            error = (self.out.float() - expected).abs().max().item()
            self.reference = None
        return {"first_s": first, "rest": rest, "max_abs_diff": error}

    def run(self, count: int) -> dict[str, Any]:
        return h.timed_calls(self._call, self.sync, self.device, count)


def worker_main() -> None:
    worker = EnhanceWorker()
    h.serve({"setup": worker.setup, "warmup": worker.warmup, "run": worker.run})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=1, help="images per call (times are per image)")
    parser.add_argument("--runs", type=int, default=5, help="timed calls per round")
    h.add_common_arguments(parser, PUBLISHED_IMAGE_S)
    args = parser.parse_args()
    if args.size % 16:
        raise SystemExit("--size must be a multiple of 16")

    print(f"# enhance (generator forward): conv_dim {args.conv_dim}, {args.size} x {args.size}, "
          f"batch {args.batch}, device {args.device}, {h.describe_machine(args.device)}")
    m = h.measure_variants(__file__, args, dict(conv_dim=args.conv_dim, size=args.size, batch=args.batch),
                           args.runs, lambda v: parse_variant(v).compile,
                           lambda reply: f"max |out - eager| {reply['max_abs_diff']}")

    def max_diff(variant: str) -> str:
        error = m.warmup[variant]["max_abs_diff"]
        return "-" if error is None else f"{error:.1e}"

    h.print_table(m, "image", args.reference_s, "issue 7; conv_dim 32, 512 x 512, generator alone",
                  per_call=args.batch, extra={"max|diff|": max_diff})


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main()
    else:
        main()
