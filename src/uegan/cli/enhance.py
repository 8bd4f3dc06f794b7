"""``uegan enhance``: enhance photos with a trained generator.

Inputs are files, folders (searched recursively) or glob patterns. A bad input (an empty,
truncated or non-image file, a decompression bomb, an unreadable path, an output that cannot be
written) gives one line naming the file and the reason, and the others are still processed.
Exit code: 0 when every input succeeded (or was skipped because its output exists), 1 when some
failed (an output path that is a folder too), 2 for a usage error (a bad option, an unreadable
checkpoint, an ``--out`` that is a file or not writable: all found before any work), 130 / 143
when Ctrl-C / SIGTERM stopped it (the file in progress is abandoned, its temporary file removed).

Existing outputs are skipped unless ``--overwrite``, so an interrupted job resumes where it
stopped; the temporary files that a killed run left beside this run's outputs are removed at the
start (only names of the form that :func:`uegan.io.files.atomic_path` makes for these outputs).
Images inside ``--out`` are never inputs, so an output folder inside an input folder is not
enhanced again on a rerun.

``--shard i/n`` (and the ``RANK`` / ``WORLD_SIZE`` that ``torchrun`` sets) split the inputs
deterministically: sorted by output path, input k goes to shard k mod n.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from uegan.cli import EXIT_FAILED, EXIT_OK, interruption_exit_code, interruption_name
from uegan.cli.preflight import (add_checkpoint_option, check_out_folder, check_threads,
                                 select_device)
from uegan.errors import UserError
from uegan.inference import DEFAULT_MAX_SIDE, DEFAULT_TILE, Enhancer, InferenceAcceleration
from uegan.io.files import remove_stale_temporaries
from uegan.io.listing import is_image_path, list_images
from uegan.io.photo import (DEFAULT_MAX_PIXELS, DEFAULT_QUALITY, OUTPUT_FORMATS, PhotoError,
                            normalise_format)
from uegan.io.writer import default_output_format
from uegan.progress import Progress
from uegan.runtime import DEVICE_CHOICES, PRECISIONS, configure_threads, inference_precision

log = logging.getLogger(__name__)

PROG = "uegan enhance"
COMPILE_MIN_IMAGES = 32  # --fast compiles from this many images (benchmarks/RESULTS.md)


@dataclass
class Job:
    source: Path
    relative: Path  # output path relative to --out, with the input's suffix
    output: Path | None = None


def register(subparsers) -> None:

    parser = subparsers.add_parser(
        "enhance", help="enhance photos with a trained generator",
        description="Enhance photos (PNG, JPEG, TIFF, WebP, BMP; HEIC and camera RAW such as "
                    "DNG, CR2, NEF, ARW with the heif and raw extras) with a UEGAN generator. "
                    "The checkpoint may be a published UEGAN .pth, a training checkpoint of this "
                    "project or an exported generator; its format is detected.")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files, folders (searched recursively) or glob patterns")
    add_checkpoint_option(parser)
    parser.add_argument("--out", "-o", required=True, type=Path,
                        help="output folder (folder inputs keep their sub-folders)")
    parser.add_argument("--format", choices=sorted(OUTPUT_FORMATS) + ["jpg", "tif"],
                        help="output format (default: the input's; camera RAW inputs give "
                             "TIFF, with --bit-depth 16 at their full precision, and HEIC/HEIF "
                             "inputs JPEG: uegan reads those formats but does not write them)")
    parser.add_argument("--quality", type=int, default=DEFAULT_QUALITY,
                        help=f"JPEG / WebP quality, 1-100 (default {DEFAULT_QUALITY})")
    parser.add_argument("--bit-depth", type=int, choices=(8, 16), default=8,
                        help="bits per channel of PNG and TIFF outputs (default 8)")
    parser.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE,
                        help=f"long side at which the generator runs on larger photos; the "
                             f"result is carried to full resolution by a guided-filter colour "
                             f"transform (default {DEFAULT_MAX_SIDE})")
    parser.add_argument("--full-res", action="store_true",
                        help="run the generator on the whole image (tiled, exact; slower)")
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE,
                        help=f"tile side for --full-res on large images (default {DEFAULT_TILE})")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"refuse images with more pixels (decompression bombs; default "
                             f"{DEFAULT_MAX_PIXELS:,})")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--shard", metavar="I/N",
                        help="process only the I-th of N deterministic parts of the inputs "
                             "(0-based); combined with torchrun's RANK/WORLD_SIZE")
    parser.add_argument("--device", default="auto",
                        help=f"{DEVICE_CHOICES} (default auto: CUDA, then MPS, then the CPU; "
                             f"under torchrun each process its own GPU)")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N",
                        help="photos read and enhanced together (default 1); photos whose "
                             "generator input has one size share a forward pass, which fills a "
                             "GPU better; the outputs are the same")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (at least 1)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress: by default a bar on a terminal, else a line every "
                             "10 s with the count, the rate and the ETA")
    speed = parser.add_argument_group(
        "speed and precision", "figures in benchmarks/RESULTS.md and the README's \"Speed and "
        "precision\"")
    speed.add_argument("--precision", choices=("auto",) + PRECISIONS, default="auto",
                       help="precision of the generator: auto (the default) is bf16 where the "
                            "device computes it natively (CPUs with AVX512-BF16 or AMX, CUDA "
                            "GPUs: within one 8-bit level of fp32 on at least 99.9%% of values) "
                            "and fp32 elsewhere; fp32 is the published numerics")
    speed.add_argument("--exact", action="store_true",
                       help="the published computation: fp32, no rewrites, no compilation "
                            "(the same as --precision fp32 without --fast)")
    speed.add_argument("--fast", action="store_true",
                       help="exact fp32 rewrites of the generator (uegan.models.fast), and "
                            "torch.compile when at least --compile-min images are to be enhanced "
                            "(compiling takes 20-60 s on a CPU once, then it is cached on disk)")
    speed.add_argument("--compile-min", type=int, default=COMPILE_MIN_IMAGES, metavar="N",
                       help=f"with --fast, compile only for at least N images (default "
                            f"{COMPILE_MIN_IMAGES}: fewer do not repay the compilation)")
    parser.set_defaults(func=run)


def parse_shard(text: str | None) -> tuple[int, int]:
    if text is None:
        return 0, 1
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UserError(f"--shard {text!r}: expected I/N, for example 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise UserError(f"--shard {text!r}: need 0 <= I < N")
    return index, count


def effective_shard(shard: tuple[int, int], environ=os.environ) -> tuple[int, int]:
    """Combine --shard with torchrun's RANK / WORLD_SIZE: shard i/n of rank r of w -> i*w+r / n*w."""
    index, count = shard
    try:
        world = int(environ.get("WORLD_SIZE", "1"))
        rank = int(environ.get("RANK", "0"))
    except ValueError:
        raise UserError("RANK / WORLD_SIZE must be integers") from None
    if world < 1 or not 0 <= rank < world:
        raise UserError(f"RANK {rank} / WORLD_SIZE {world} are inconsistent")
    return index * world + rank, count * world


def _real(path: Path) -> Path:
    """``path`` with symbolic links resolved as far as they go (a looping link raises nothing)."""
    return Path(os.path.realpath(path))


def _inside(path: Path, folder: Path | None) -> bool:
    """True when ``path`` (symbolic links resolved) is ``folder`` or lies inside it."""
    return folder is not None and _real(path).is_relative_to(folder)


def expand_inputs(specs: list[str], exclude: Path | None = None
                  ) -> tuple[list[Job], list[tuple[str, str]]]:
    """Jobs for every image named by the inputs, and (input, reason) for inputs that name none.

    Folders and patterns never yield images inside ``exclude`` (the output folder: its images
    are results, not inputs); a file named on the command line is kept. A file reached twice
    (named twice, or by a pattern through a looping symbolic link) is one job, under its first
    name."""
    jobs: list[Job] = []
    failures: list[tuple[str, str]] = []
    excluded = None if exclude is None else _real(exclude)

    def on_problem(path: Path, reason: str) -> None:
        failures.append((str(path), reason))

    def add_folder(folder: Path) -> None:
        images = list_images(folder, exclude=[] if exclude is None else [exclude],
                             on_problem=on_problem)
        if not images:
            failures.append((str(folder), "no images in this folder"))
        jobs.extend(Job(path, path.relative_to(folder)) for path in images)

    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            add_folder(path)
        elif path.exists() or path.is_symlink():
            jobs.append(Job(path, Path(path.name)))
        elif glob.has_magic(spec):
            matches = sorted(glob.glob(os.path.expanduser(spec), recursive=True))
            if not matches:
                failures.append((spec, "no file matches this pattern"))
            for match in map(Path, matches):
                if _inside(match, excluded):
                    continue
                if match.is_dir():
                    add_folder(match)
                elif is_image_path(match):
                    jobs.append(Job(match, Path(match.name)))
        else:
            failures.append((spec, "no such file or folder"))
    unique: dict[Path, Job] = {}
    for job in jobs:
        unique.setdefault(_real(job.source), job)
    return list(unique.values()), failures


def plan_outputs(jobs: list[Job], out: Path, format: str | None
                 ) -> tuple[list[Job], list[tuple[str, str]]]:
    """Give each job its output path; refuse collisions and outputs that would replace an input."""

    failures: list[tuple[str, str]] = []
    planned: dict[Path, Job] = {}
    # realpath, not Path.resolve: a looping symbolic link must not stop the batch (it fails alone)
    sources = {_real(job.source) for job in jobs}
    for job in sorted(jobs, key=lambda j: (j.relative.as_posix(), str(j.source))):
        relative = job.relative
        chosen = format or default_output_format(relative)  # RAW and HEIC are not written
        if chosen is not None:
            relative = relative.with_suffix(OUTPUT_FORMATS[chosen][1])
        elif not is_image_path(relative):
            relative = relative.with_suffix(relative.suffix + ".png")
        output = out / relative
        key = Path(os.path.normpath(output.absolute()))
        if key in planned:
            failures.append((str(job.source), f"its output {output} would also be written from "
                                              f"{planned[key].source}; skipped"))
            continue
        if _real(output) in sources:
            failures.append((str(job.source), f"its output {output} would replace an input; "
                                              f"choose another --out"))
            continue
        job.output = output
        planned[key] = job
    ordered = sorted(planned.values(), key=lambda j: (j.relative.as_posix(), str(j.source)))
    return ordered, failures


def _reason(error: BaseException, job: Job) -> str:

    if isinstance(error, PhotoError):
        return str(error)
    if isinstance(error, UserError):
        return f"{job.source}: {error}"
    if isinstance(error, OSError):
        what = error.strerror or str(error)
        where = error.filename or job.output
        return f"{job.source}: cannot write {where} ({what})"
    if isinstance(error, MemoryError):
        return f"{job.source}: out of memory (try a smaller --max-side or --tile)"
    return f"{job.source}: {error.__class__.__name__}: {error}"


def acceleration_for(args: argparse.Namespace, device, images: int
                     ) -> InferenceAcceleration:
    """The generator's speed-ups: the precision (``auto``: bf16 where native), and with
    ``--fast`` the exact rewrites, compiled only when ``images`` repay it."""
    precision = "fp32" if args.exact else inference_precision(args.precision, device)
    if not args.fast:
        return InferenceAcceleration(precision=precision)
    compile = images >= args.compile_min
    if not compile:
        log.info("--fast: %d image(s), fewer than --compile-min %d: the exact rewrites without "
                 "compiling (compiling costs 20-60 s once)", images, args.compile_min)
    # dynamic=None: one shape-generic graph after the second image size
    return InferenceAcceleration.fast(precision=precision, dynamic=None, compile=compile)


def _load_enhancer(args: argparse.Namespace, device: str, acceleration):

    try:
        return Enhancer.load(args.checkpoint, device, max_side=args.max_side,
                             full_res=args.full_res, tile=args.tile, acceleration=acceleration)
    except OSError as error:  # a folder, no permission: the checkpoint named as given
        raise UserError(f"--checkpoint {args.checkpoint}: cannot read it "
                        f"({error.strerror or error})") from error


def run(args: argparse.Namespace) -> int:

    # every usage error is found here, before the generator is loaded or any image is read
    format = normalise_format(args.format) if args.format else None
    if not 1 <= args.quality <= 100:
        raise UserError(f"--quality {args.quality}: expected 1 to 100")
    if args.bit_depth == 16 and format is not None and not OUTPUT_FORMATS[format][2]:
        raise UserError(f"--bit-depth 16 needs --format png or tiff ({format} holds 8 bits)")
    if args.max_pixels < 1:
        raise UserError("--max-pixels must be positive")
    if args.exact and (args.fast or args.precision not in ("auto", "fp32")):
        raise UserError("--exact is the published fp32 computation: it cannot go with --fast "
                        "or --precision bf16/fp16")
    if args.compile_min < 1:
        raise UserError(f"--compile-min {args.compile_min}: must be at least 1")
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be at least 1")
    check_threads(args.threads)
    device = select_device(args.device)
    check_out_folder(args.out)
    shard_index, shard_count = effective_shard(parse_shard(args.shard))
    configure_threads(args.threads)

    jobs, failures = expand_inputs(args.inputs, exclude=args.out)
    jobs, collisions = plan_outputs(jobs, args.out, format)
    failures += collisions
    if shard_count > 1:
        jobs = jobs[shard_index::shard_count]
        if shard_index != 0:
            failures = []  # problems with the input list are reported once, by shard 0
    to_write = sum(args.overwrite or not job.output.exists() for job in jobs)
    enhancer = _load_enhancer(args, device, acceleration_for(args, device, to_write))
    log.info("generator: %s checkpoint %s (variant %s), on %s in %s", enhancer.source_format,
             args.checkpoint, enhancer.variant or "unknown", enhancer.device, enhancer.precision)
    for source, reason in failures:
        print(f"{PROG}: {source}: {reason}", file=sys.stderr)
    remove_stale_temporaries(job.output for job in jobs)

    counts: Counter[str] = Counter()  # done, skipped, failed: kept when a signal stops the loop
    started = time.perf_counter()
    try:
        _enhance_all(jobs, enhancer, args, format, counts)
    except KeyboardInterrupt as interrupt:  # Ctrl-C or SIGTERM: the file in progress is dropped
        print(f"{PROG}: stopped by {interruption_name(interrupt)} after "
              f"{counts.total()} of {len(jobs)} images", file=sys.stderr)
        return interruption_exit_code(interrupt)
    failed = counts["failed"] + len(failures)
    elapsed = time.perf_counter() - started
    shard_note = f" (shard {shard_index}/{shard_count})" if shard_count > 1 else ""
    log.info("enhanced %d, skipped %d existing, failed %d%s in %.1f s", counts["done"],
             counts["skipped"], failed, shard_note, elapsed)
    return EXIT_FAILED if failed else EXIT_OK


def _enhance_all(jobs: list[Job], enhancer, args: argparse.Namespace, format: str | None,
                 counts: Counter[str]) -> None:
    """Enhance the jobs ``--batch-size`` at a time, counting each in ``counts`` as done, skipped
    (its output exists) or failed (one line printed), with progress
    (:class:`uegan.progress.Progress`). An interruption leaves no output and no temporary file
    for the jobs in progress (atomic_path removes it) and propagates."""
    with Progress(len(jobs), "enhancing", enabled=not args.no_progress) as progress:
        for start in range(0, len(jobs), args.batch_size):
            chunk = jobs[start:start + args.batch_size]
            ready = []
            for job in chunk:
                status = _precheck(job, args)
                if status is None:
                    ready.append(job)
                else:
                    counts[status] += 1
                    progress.update()
            by_output = {job.output: job for job in ready}
            results = enhancer.enhance_files(
                [(job.source, job.output) for job in ready], batch_size=args.batch_size,
                format=format,  # None: from each output's suffix
                bit_depth=args.bit_depth, quality=args.quality, overwrite=args.overwrite,
                max_pixels=args.max_pixels)
            for _source, output, error in results:
                counts[_outcome(by_output[output], error, args)] += 1
                progress.update()


def _precheck(job: Job, args: argparse.Namespace) -> str | None:
    """``"skipped"`` (the output exists), ``"failed"`` (one line printed: the output is a
    folder) or None: to be enhanced."""
    if job.output.is_dir():
        print(f"{PROG}: {job.source}: its output {job.output} is a folder; move it away or "
              f"choose another --out", file=sys.stderr)
        return "failed"
    if job.output.exists() and not args.overwrite:
        log.debug("%s exists, skipped", job.output)
        return "skipped"
    return None


def _outcome(job: Job, error: Exception | None, args: argparse.Namespace) -> str:
    """``"done"``, or ``"failed"`` with one line printed (and the traceback with --debug)."""
    if error is None:
        log.debug("wrote %s", job.output)
        return "done"
    print(f"{PROG}: {_reason(error, job)}", file=sys.stderr)
    if args.debug:
        traceback.print_exception(error)
    return "failed"
