"""Enhancement speed and memory on large photos, and batch throughput at 512 x 512.

    python benchmarks/enhance_large.py                    # 24 MP default mode, batch MP/s
    python benchmarks/enhance_large.py --threads 1        # one torch thread (busy machines)
    python benchmarks/enhance_large.py --full-res-mp 4    # also --full-res on a 4 MP photo

Every measurement runs in its own subprocess, which reports its wall time and its peak resident
memory (VmHWM from /proc/self/status: torch's allocations included). The photo is synthetic
(smooth gradients, texture and noise, JPEG quality 92), the generator has the published size
(conv_dim 32) with random weights: speed and memory do not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_photo(path: Path, megapixels: float) -> Path:
    import numpy as np
    from PIL import Image

    if path.exists():
        return path
    width = int(round((megapixels * 1e6 * 1.5) ** 0.5))
    height = int(round(width / 1.5))
    rng = np.random.default_rng(0)
    out = np.empty((height, width, 3), dtype=np.uint8)
    xx = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    for start in range(0, height, 512):  # in strips: the generator script stays small too
        yy = np.linspace(start / height, min(start + 512, height) / height,
                         min(512, height - start), dtype=np.float32)[:, None]
        base = [0.45 + 0.3 * np.sin(6 * xx + 2 * yy), 0.4 + 0.3 * np.cos(5 * yy - 3 * xx),
                0.35 + 0.25 * np.sin(9 * xx * yy + 1)]
        texture = 0.08 * np.sin(400 * xx + 300 * yy) * np.cos(250 * yy)
        strip = np.stack([b + texture for b in base], -1)
        strip += rng.normal(0, 0.02, strip.shape).astype(np.float32)
        out[start:start + 512] = np.clip(strip * 255, 0, 255).astype(np.uint8)
    Image.fromarray(out).save(path, quality=92)
    return path


def make_checkpoint(path: Path) -> Path:
    import torch

    from uegan.models.generator import Generator, GeneratorConfig
    from uegan.models.published import generator_to_published

    if not path.exists():
        torch.manual_seed(0)
        generator = Generator(GeneratorConfig(conv_dim=32))
        torch.save({"G_net": generator_to_published(generator.state_dict())}, path)
    return path


# -- measurements, each in its own process --------------------------------------------------------


def child_photo(args) -> dict:
    import numpy as np
    import torch

    from uegan.io.files import atomic_path
    from uegan.inference import Enhancer
    from uegan.io.photo import read_photo, write_photo

    if args.threads:
        torch.set_num_threads(args.threads)
    options = {"max_side": args.max_side} if args.max_side else {}
    enhancer = Enhancer.load(args.checkpoint, "cpu", full_res=args.full_res, **options)
    started, cpu_started = time.perf_counter(), time.process_time()
    photo = read_photo(args.input)
    read = time.perf_counter()
    rgb = enhancer.enhance_array(photo.rgb, np.uint8)
    enhanced = time.perf_counter()
    with atomic_path(args.output, overwrite=True) as temporary:
        write_photo(temporary, rgb, format="jpeg", exif=photo.exif, quality=92)
    written = time.perf_counter()
    return {"width": photo.size[0], "height": photo.size[1], "read_s": read - started,
            "enhance_s": enhanced - read, "write_s": written - enhanced,
            "total_s": written - started, "total_cpu_s": time.process_time() - cpu_started,
            "load_average": os.getloadavg()[0], "peak_rss_mib": peak_rss_mib(),
            "max_side": enhancer.max_side, "full_res": enhancer.full_res,
            "threads": torch.get_num_threads()}


def child_batch(args) -> dict:
    import torch

    from uegan.inference import Enhancer
    from uegan.models.generator import Generator, GeneratorConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    enhancer = Enhancer(Generator(GeneratorConfig(conv_dim=32)))
    x = torch.rand(args.batch, 3, 512, 512)
    enhancer.generate(x)  # warm-up
    times, cpu = [], []
    for _ in range(args.repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        enhancer.generate(x)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    best = min(times)
    return {"batch": args.batch, "seconds_best": best, "seconds_all": times, "cpu_s": cpu,
            "load_average": os.getloadavg()[0],
            "megapixels_per_s": args.batch * 512 * 512 / 1e6 / best,
            "peak_rss_mib": peak_rss_mib(), "threads": torch.get_num_threads()}


def run_child(kind: str, **options) -> dict:
    command = [sys.executable, __file__, "--child", kind]
    for key, value in options.items():
        if value is None or value is False:
            continue
        command.append(f"--{key.replace('_', '-')}")
        if value is not True:
            command.append(str(value))
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["process_wall_s"] = time.perf_counter() - started
    return report


def run_cli(photo: Path, checkpoint: Path, out: Path, threads: int | None,
            max_side: int | None) -> dict:
    command = [sys.executable, "-m", "uegan", "enhance", str(photo), "--checkpoint",
               str(checkpoint), "--out", str(out), "--overwrite"]
    if max_side:
        command += ["--max-side", str(max_side)]
    if threads:
        command += ["--threads", str(threads)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return {"cli_wall_s": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", choices=("photo", "batch"))
    parser.add_argument("--input")
    parser.add_argument("--output")
    parser.add_argument("--checkpoint")
    parser.add_argument("--full-res", action="store_true")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--max-side", type=int, help="working size (default: uegan's)")
    parser.add_argument("--megapixels", type=float, default=24.0)
    parser.add_argument("--full-res-mp", type=float, default=0.0,
                        help="also run --full-res on a photo of this many megapixels")
    parser.add_argument("--batch-sizes", default="1,4,8")
    parser.add_argument("--work", type=Path,
                        default=Path(tempfile.gettempdir()) / "uegan-bench-enhance")
    args = parser.parse_args()

    if args.child:
        report = child_photo(args) if args.child == "photo" else child_batch(args)
        print(json.dumps(report))
        return

    args.work.mkdir(parents=True, exist_ok=True)
    checkpoint = make_checkpoint(args.work / "published-conv32.pth")
    print(f"load average before: {os.getloadavg()}", flush=True)
    photo = make_photo(args.work / f"photo-{args.megapixels:g}mp.jpg", args.megapixels)
    report = run_child("photo", input=photo, output=args.work / "out.jpg", checkpoint=checkpoint,
                       threads=args.threads, max_side=args.max_side)
    print(f"default mode, {report['width']}x{report['height']}: " + json.dumps(report), flush=True)
    print("whole command (start-up and model load included): "
          + json.dumps(run_cli(photo, checkpoint, args.work / "cli-out", args.threads,
                                 args.max_side)), flush=True)
    if args.full_res_mp:
        small = make_photo(args.work / f"photo-{args.full_res_mp:g}mp.jpg", args.full_res_mp)
        report = run_child("photo", input=small, output=args.work / "out-full.jpg",
                           checkpoint=checkpoint, full_res=True, threads=args.threads)
        print(f"--full-res, {report['width']}x{report['height']}: " + json.dumps(report),
              flush=True)
    for batch in (int(b) for b in args.batch_sizes.split(",") if b):
        report = run_child("batch", batch=batch, repeats=args.repeats, threads=args.threads)
        print(f"batch {batch} x 512x512: " + json.dumps(report), flush=True)
    print(f"load average after: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
