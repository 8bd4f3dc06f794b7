"""Mutation check: plant known bugs one at a time and see whether the tests catch them.

    python benchmarks/mutations.py                 # every row (11 minutes on 2 busy CPU cores)
    python benchmarks/mutations.py --only halo     # rows whose name contains "halo"
    python benchmarks/mutations.py --list          # the rows, without running anything

Each row is a hand-written patch (a file, its exact old text, the new text) and the tests to run
(pytest arguments: files or node ids). The script copies ``src/``, ``tests/``, ``docs/`` and
``pyproject.toml`` to a temporary folder, runs the selected tests there once unmodified (they must
pass: otherwise "caught" would mean nothing), then, for every row, applies the patch to the copy,
runs its tests with ``PYTHONPATH`` pointing at the copy's ``src`` (so the installed package is not
what gets imported), and restores the file. A first check imports
``uegan`` the same way and confirms it comes from the copy; the first row plants an import error
in the copy's package, which every test that imports uegan must then report.

Output: a Markdown table, planted bug | tests run | caught | which tests failed | seconds.
Exit status 0 when the unmodified copy passes and every row is caught, 1 otherwise.
Nothing here is timed for its own sake: the seconds only say what a row costs to run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str                 # the planted bug, in words
    file: str                 # relative to the repository root
    old: str                  # exact text; must occur exactly once in the file
    new: str
    tests: tuple[str, ...]    # pytest arguments


MUTATIONS: tuple[Mutation, ...] = (
    Mutation("sanity: the copy's package fails to import (proves the copy is what runs)",
             "src/uegan/__init__.py", 'from uegan.errors import UserError\n',
             'raise ImportError("planted by benchmarks/mutations.py")\n',
             ("tests/test_variant_table.py",)),
    # --- the study's one variable --------------------------------------------------------------
    Mutation("`uegan-charbonnier` trained with the L1 identity loss (variant table)",
             "src/uegan/variants.py", 'Variant("uegan-charbonnier", "charbonnier", False,',
             'Variant("uegan-charbonnier", "l1", False,',
             ("tests/test_variant_table.py", "tests/test_variants_new.py")),
    Mutation("`uegan-charbonnier-se` trained with the L1 identity loss (variant table)",
             "src/uegan/variants.py", 'Variant("uegan-charbonnier-se", "charbonnier", True,',
             'Variant("uegan-charbonnier-se", "l1", True,',
             ("tests/test_variant_table.py", "tests/test_variants_new.py")),
    Mutation("the trainer always passes \"l1\" to the training step",
             "src/uegan/training/trainer.py", "low, high, self.variant.identity_criterion,",
             'low, high, "l1",',
             ("tests/test_variant_table.py", "tests/test_training_run.py")),
    # --- loaders: weights_only ------------------------------------------------------------------
    Mutation("NIMA loader with `weights_only=False`",
             "src/uegan/nima.py", 'torch.load(file, map_location="cpu", weights_only=True)',
             'torch.load(file, map_location="cpu", weights_only=False)',
             ("tests/test_nima.py", "tests/test_checkpoints.py")),
    Mutation("VGG19 loader with `weights_only=False`",
             "src/uegan/weights.py", 'torch.load(path, map_location="cpu", weights_only=True)',
             'torch.load(path, map_location="cpu", weights_only=False)',
             ("tests/test_checkpoints.py",)),
    Mutation("generator / training-checkpoint loader with `weights_only=False`",
             "src/uegan/checkpoints.py", 'torch.load(path, map_location="cpu", weights_only=True)',
             'torch.load(path, map_location="cpu", weights_only=False)',
             ("tests/test_checkpoints.py", "tests/test_training_resume.py::"
              "test_resume_never_unpickles_a_checkpoint")),
    # --- inference ------------------------------------------------------------------------------
    Mutation("guided-filter eps 1e-5 -> 1.0", "src/uegan/inference/transfer.py",
             "DEFAULT_GUIDE_EPS = 1e-5", "DEFAULT_GUIDE_EPS = 1.0", ("tests/test_inference.py",)),
    Mutation("guided-filter radius 4 -> 0", "src/uegan/inference/transfer.py",
             "DEFAULT_GUIDE_RADIUS = 4", "DEFAULT_GUIDE_RADIUS = 0", ("tests/test_inference.py",)),
    Mutation("tiled full-res decoder halo 64 -> 16", "src/uegan/models/tiling.py",
             "DECODER_HALO = 64", "DECODER_HALO = 16", ("tests/test_inference.py",)),
    Mutation("tiled GAM statistics with the N-1 variance", "src/uegan/models/tiling.py",
             "local_moments = [s.mean_var() for s in local_stats]",
             "local_moments = [s.mean_var(unbiased=True) for s in local_stats]", ("tests/test_inference.py",)),
    Mutation("`uegan enhance --precision bf16` ignored (always fp32)", "src/uegan/cli/enhance.py",
             "if args.fast else InferenceAcceleration(precision=args.precision))",
             'if args.fast else InferenceAcceleration(precision="fp32"))',
             ("tests/test_enhance_cli.py",)),
    Mutation("bf16 inference wrapper runs without autocast (always fp32)",
             "src/uegan/inference/acceleration.py",
             "with autocast(self.options.precision, x.device.type):",
             'with autocast("fp32", x.device.type):',
             ("tests/test_acceleration.py::"
              "test_bf16_inference_runs_in_bf16_within_3e3_and_returns_float32",
              "tests/test_enhance_cli.py::test_precision_flag_runs_the_generator_in_bf16")),
    Mutation("`--overwrite` keeps existing outputs", "src/uegan/cli/enhance.py",
             "if job.output.exists() and not args.overwrite:", "if job.output.exists():",
             ("tests/test_enhance_cli.py",)),
    Mutation("a file that cannot be opened (permission) reported as a corrupt image",
             "src/uegan/io/reader.py",
             '        except PermissionError as error:\n'
             '            raise PhotoError(f"{path}: cannot read (permission denied)") from error\n'
             '        except DECODE_ERRORS as error:',
             '        except DECODE_ERRORS as error:',
             ("tests/test_enhance_cli.py",)),
    Mutation("a folder that cannot be listed is skipped silently", "src/uegan/io/listing.py",
             'on_problem(directory, f"cannot list folder ({error.strerror or error})")',
             "pass", ("tests/test_enhance_cli.py",)),
    # --- training -------------------------------------------------------------------------------
    Mutation("image-pool swap probability 0.5 -> 0.3", "src/uegan/training/step.py",
             "elif self.rng.uniform(0, 1) > 0.5:", "elif self.rng.uniform(0, 1) > 0.7:",
             ("tests/test_train_step.py",)),
    Mutation("the trainer never restores the random states on resume",
             "src/uegan/training/trainer.py", '        restore_rng_state(mine["rng"])\n', "",
             ("tests/test_training_resume.py",)),
    Mutation("validation NIMA scored on the label instead of the output",
             "src/uegan/training/validation.py", "scorer.score_images([output])[0].mean",
             "scorer.score_images([label])[0].mean", ("tests/test_training_run.py",)),
    Mutation("validation SSIM with the Gaussian window instead of the published protocol",
             "src/uegan/training/validation.py", '**score_pair(output, label)}',
             '**score_pair(output, label, "gaussian")}', ("tests/test_training_run.py",)),
    # --- NIMA -----------------------------------------------------------------------------------
    Mutation("NIMA stem padding 1 -> 0", "src/uegan/nima.py",
             "nn.Conv2d(inp, oup, kernel, stride, (kernel - 1) // 2, bias=False)",
             "nn.Conv2d(inp, oup, kernel, stride, 0, bias=False)", ("tests/test_nima.py",)),
    Mutation("NIMA scorer feeds 0-255 pixels instead of [0, 1]", "src/uegan/nima.py",
             "torch.stack([preprocess(image) for image in images])",
             "torch.stack([preprocess(image) * 255 for image in images])",
             ("tests/test_nima.py",)),
    # --- uegan serve ----------------------------------------------------------------------------
    Mutation("uegan serve: a preview named by the client is read from the session folder",
             "src/uegan/apps/serve/server.py",
             '            else:\n                result = job.results.get(self._model(image))',
             '            elif not image.isdecimal():\n                path = job.source.parent / image\n'
             '            else:\n                result = job.results.get(self._model(image))',
             ("tests/test_serve.py",)),
    Mutation("uegan serve: requests for other host names answered (DNS rebinding)",
             "src/uegan/apps/serve/server.py", "            self._check_host()\n", "",
             ("tests/test_serve.py",)),
    Mutation("uegan serve: the upload limit checked only once the body is read",
             "src/uegan/apps/serve/server.py", "        if size > limit:",
             "        if size > limit * 10**6:", ("tests/test_serve.py",)),
    Mutation("uegan serve: every tab sees every photo",
             "src/uegan/apps/serve/store.py", "for job in session.jobs.values()]",
             "for job in self._order]", ("tests/test_serve.py",)),
    Mutation("uegan serve: the temporary folder is left behind at exit",
             "src/uegan/apps/serve/app.py", "        self.worker.stop()\n        self.store.remove()",
             "        self.worker.stop()", ("tests/test_serve.py", "tests/test_serve_cli.py")),
    Mutation("uegan serve: downloads written at JPEG quality 90 instead of uegan enhance's",
             "src/uegan/apps/serve/worker.py", "format=job.format,\n",
             "format=job.format, quality=90,\n", ("tests/test_serve.py", "tests/test_serve_browser.py")),
    # --- everyday use and defaults (stop 21) -------------------------------------------------
    Mutation("training: the loss lines reach train.log only when no bar is shown",
             "src/uegan/training/run_log.py",
             "        self.log_to_file(line)  # whatever the log level of the terminal (--quiet too)\n",
             "        if to_terminal:\n            log.info(\"%s\", line)\n            return\n"
             "        self.log_to_file(line)\n",
             ("tests/test_training_progress.py",)),
    Mutation("training: the ETA counts the steps of the whole run, not this process's",
             "src/uegan/training/trainer.py",
             "self.step - self._loop_first_step,", "self.step,",
             ("tests/test_training_progress.py",)),
    Mutation("uegan enhance --batch-size: every photo runs alone (no shared forward pass)",
             "src/uegan/inference/enhancer.py",
             "groups.setdefault((index,) if tiled else tuple(x.shape), []).append(index)",
             "groups.setdefault((index,), []).append(index)",
             ("tests/test_python_api.py",)),
    Mutation("precision auto: AVX-512 without BF16 taken for native bf16",
             "src/uegan/runtime.py", 'BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")',
             'BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "avx512f")',
             ("tests/test_default_precision.py",)),
    Mutation("uegan enhance --fast compiles for a single photo",
             "src/uegan/cli/enhance.py", "    compile = images >= args.compile_min\n",
             "    compile = True\n", ("tests/test_default_precision.py",)),
    Mutation("uegan train --print-config marks no changed setting",
             "src/uegan/cli/train.py", 'mark = "*" if value != default else " "', 'mark = " "',
             ("tests/test_cli_conventions.py",)),
)


def find_shared() -> Path:
    """The shared folder the tests read the golden files from (as tests/conftest.py finds it)."""
    if "UEGAN_SHARED" in os.environ:
        return Path(os.environ["UEGAN_SHARED"])
    for candidate in (REPO.parent / "shared", Path("/work/shared")):
        if candidate.is_dir():
            return candidate
    raise SystemExit("cannot find the shared folder (golden files): set UEGAN_SHARED")


def make_copy(root: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")
    shutil.copytree(REPO / "src", root / "src", ignore=ignore)
    shutil.copytree(REPO / "tests", root / "tests", ignore=ignore)
    shutil.copytree(REPO / "docs", root / "docs", ignore=ignore)  # scripts some tests run
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")


def environment(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root / "src") + (os.pathsep + env["PYTHONPATH"]
                                             if env.get("PYTHONPATH") else "")
    env["UEGAN_SHARED"] = str(find_shared())
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a patched file of the same size must never meet a stale .pyc
    return env


def check_imported_from_copy(root: Path) -> str:
    result = subprocess.run([sys.executable, "-c", "import uegan; print(uegan.__file__)"],
                            cwd=root, env=environment(root), capture_output=True, text=True)
    location = result.stdout.strip()
    if result.returncode != 0 or not Path(location).resolve().is_relative_to(root.resolve()):
        raise SystemExit(f"uegan is imported from {location or result.stderr}, not from the copy "
                         f"in {root}: the check would test the installed package")
    return location


@dataclass
class Outcome:
    code: int
    failed: list[str]
    summary: str
    seconds: float


def run_pytest(root: Path, args: tuple[str, ...]) -> Outcome:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=no", "-rfE",
               *args]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=root, env=environment(root), capture_output=True,
                            text=True)
    seconds = time.perf_counter() - started
    failed = []
    for line in result.stdout.splitlines():
        match = re.match(r"(FAILED|ERROR) (.+?)(?: - .*)?$", line)
        if match:
            failed.append(match.group(2))
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return Outcome(result.returncode, failed, lines[-1] if lines else result.stderr[-300:], seconds)


def short_names(failed: list[str], limit: int = 4) -> str:
    names = []
    for node in failed:
        name = node.split("::", 1)[1] if "::" in node else f"{node} (collection)"
        if name not in names:
            names.append(name)
    text = ", ".join(f"`{n}`" for n in names[:limit])
    return text + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def apply(root: Path, mutation: Mutation) -> str:
    path = root / mutation.file
    original = path.read_text(encoding="utf-8")
    count = original.count(mutation.old)
    if count != 1:
        raise SystemExit(f"{mutation.name}: the old text occurs {count} times in {mutation.file} "
                         f"(expected once); update the patch")
    path.write_text(original.replace(mutation.old, mutation.new), encoding="utf-8")
    return original


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="run only the rows whose name contains this text")
    parser.add_argument("--list", action="store_true", help="list the rows and exit")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = parser.parse_args()
    rows = [m for m in MUTATIONS if args.only is None or args.only.lower() in m.name.lower()]
    if args.list:
        for mutation in rows:
            print(f"{mutation.name}  [{mutation.file}]  {' '.join(mutation.tests)}")
        return 0
    if not rows:
        raise SystemExit(f"no row matches {args.only!r}")

    root = Path(tempfile.mkdtemp(prefix="uegan-mutations-"))
    try:
        make_copy(root)
        print(f"copy: {root}; uegan imported from {check_imported_from_copy(root)}", flush=True)
        # every patch must apply to the current sources before anything runs
        for mutation in rows:
            original = apply(root, mutation)
            (root / mutation.file).write_text(original, encoding="utf-8")
        selections = []
        for mutation in rows:
            for arg in mutation.tests:
                if arg not in selections:
                    selections.append(arg)
        # the unmodified copy: every selected test passes
        baseline = run_pytest(root, tuple(selections))
        print(f"unmodified copy: {baseline.summary} ({baseline.seconds:.0f} s)", flush=True)
        if baseline.code != 0:
            print("the unmodified copy fails: " + ", ".join(baseline.failed))
            return 1

        print()
        print("| planted bug | tests run | caught | tests that failed | seconds |")
        print("|---|---|---|---|---|")
        all_caught = True
        for mutation in rows:
            original = apply(root, mutation)
            try:
                outcome = run_pytest(root, mutation.tests)
            finally:
                (root / mutation.file).write_text(original, encoding="utf-8")
            caught = outcome.code in (1, 2) and bool(outcome.failed)
            all_caught &= caught
            tests = " ".join(t.replace("tests/", "") for t in mutation.tests)
            detail = short_names(outcome.failed) if caught else f"none ({outcome.summary})"
            print(f"| {mutation.name} | {tests} | {'yes' if caught else '**no**'} | {detail} | "
                  f"{outcome.seconds:.0f} |", flush=True)
        return 0 if all_caught else 1
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
