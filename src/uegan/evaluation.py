"""Evaluating a folder of enhanced images: pairing with labels, per-image metrics, true means.

Outputs are paired with labels by file stem (``a4970-DSC_0377.jpg`` with ``a4970-DSC_0377.png``).
Every file that cannot be evaluated (no label, no output, different size, unreadable) is named in
:attr:`EvaluationResult.problems`; the others are measured with PSNR, SSIM and the CIEDE2000 colour
difference under the published protocol (:mod:`uegan.metrics`) and, when weights are at hand, NIMA
(:mod:`uegan.nima`).

The summary holds true means. The published evaluation scripts divide the sum over N images by
N - 1, which inflates every figure by N / (N - 1); that number is kept apart, clearly labelled,
only to compare with figures computed that way (PSNR and SSIM: the scripts never computed
CIEDE2000).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from uegan import metrics, nima
from uegan.errors import UserError
from uegan.io.files import atomic_path, folder_write_problem
from uegan.io.images import find_images, images_by_stem, list_images, load_rgb8
from uegan.progress import Progress
from uegan.runtime import select_device

log = logging.getLogger(__name__)

NimaMode = Literal["auto", "on", "off"]
METRIC_KEYS: tuple[str, ...] = (*metrics.FULL_REFERENCE, "nima", "nima_std")
"""Per-image metrics in the JSON rows, the summary and the CSV, in this order."""
PUBLISHED_SCRIPT_KEYS: tuple[str, ...] = ("psnr", "ssim")
"""The metrics the published evaluation scripts averaged (sum / (N - 1))."""
CSV_COLUMNS: tuple[str, ...] = ("image", *METRIC_KEYS, "pred", "label")


@dataclass(frozen=True)
class EvaluationConfig:
    """What to evaluate and how.

    ``nima``: ``"on"`` requires the NIMA weights, ``"off"`` skips NIMA, ``"auto"`` computes it
    when the weights are found (and requires them when there is no label folder, since NIMA is
    then the only metric).
    """

    pred_dir: Path
    label_dir: Path | None = None
    ssim_protocol: metrics.SsimProtocol = "published"
    nima: NimaMode = "auto"
    nima_weights: Path | None = None
    device: str = "cpu"
    progress: bool = False


@dataclass
class ImageResult:
    """The metrics of one output image (``None``: not computed)."""

    stem: str
    pred: Path
    label: Path | None = None
    psnr: float | None = None
    ssim: float | None = None
    ciede2000: float | None = None  # mean CIEDE2000 colour difference (lower is better)
    nima: float | None = None
    nima_std: float | None = None

    def row(self) -> dict[str, Any]:
        """The JSON row: file name and paths, then every computed metric."""
        row: dict[str, Any] = {"image": self.pred.name, "stem": self.stem, "pred": str(self.pred)}
        if self.label is not None:
            row["label"] = str(self.label)
        for key in METRIC_KEYS:
            value = getattr(self, key)
            if value is not None:
                row[key] = value
        return row


@dataclass(frozen=True)
class Problem:
    """A file that was not evaluated, and why."""

    path: Path
    reason: str

    def row(self) -> dict[str, str]:
        return {"file": str(self.path), "problem": self.reason}


@dataclass
class EvaluationResult:
    results: list[ImageResult]
    problems: list[Problem] = field(default_factory=list)
    ssim_protocol: str = "published"
    has_labels: bool = True
    nima_weights: Path | None = None

    def _values(self, key: str) -> list[float]:
        return [v for v in (getattr(r, key) for r in self.results) if v is not None]

    def summary(self) -> dict[str, Any]:
        """True means over the evaluated images; ``count`` is how many."""
        summary: dict[str, Any] = {}
        for key in METRIC_KEYS:
            values = self._values(key)
            if values:
                summary[key] = metrics.true_mean(values)
        summary["count"] = len(self.results)
        return summary

    def published_script_average(self) -> dict[str, float] | None:
        """The published scripts' figures (sum / (N - 1)), for comparison only; None when N < 2."""
        if len(self.results) < 2 or not self.has_labels:
            return None
        return {key: metrics.published_script_average(self._values(key)) for key in PUBLISHED_SCRIPT_KEYS}

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "summary": self.summary(),
            "per_image": [r.row() for r in self.results],
            "protocol": {
                "psnr_ssim": f"8-bit RGB, {metrics.BORDER}-pixel border crop, float64",
                "ssim": self.ssim_protocol,
                "ciede2000": "mean over the cropped pixels of the CIEDE2000 difference (kL=kC=kH=1) "
                             "in CIE Lab (sRGB, D65, 2 degree observer, as skimage.color.rgb2lab); "
                             "lower is better",
                "mean": "true mean over the evaluated images (sum / N)",
            },
            "problems": [p.row() for p in self.problems],
        }
        if self.nima_weights is not None:
            document["protocol"]["nima_weights"] = str(self.nima_weights)
        published = self.published_script_average()
        if published is not None:
            n = len(self.results)
            document["published_script_average"] = {
                **published,
                "note": f"sum over N={n} images divided by N-1, as the published scripts do; "
                        f"overstates the mean by N/(N-1) = {n / (n - 1):.6g}. For comparison only.",
            }
        return _finite_or_string(document)

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for result in self.results:
            row = result.row()
            writer.writerow({key: _csv_value(row.get(key)) for key in CSV_COLUMNS})
        return buffer.getvalue()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _finite_or_string(value: Any) -> Any:
    """JSON has no infinity: identical images (PSNR inf) are written as the string "inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite_or_string(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_string(v) for v in value]
    return value


@dataclass(frozen=True)
class Pairing:
    pairs: list[tuple[str, Path, Path | None]]  # stem, output, label (None: no-reference)
    problems: list[Problem]


def pair_by_stem(pred_dir: Path, label_dir: Path | None) -> Pairing:
    """Pair every output image with the label of the same stem; the rest become problems."""
    preds = images_by_stem(find_images(pred_dir))
    if label_dir is None:
        return Pairing([(stem, path, None) for stem, path in sorted(preds.items())], [])
    labels = images_by_stem(find_images(label_dir))
    pairs = [(stem, preds[stem], labels[stem]) for stem in sorted(preds.keys() & labels.keys())]
    problems = [Problem(preds[s], f"no label named {s}.* in {label_dir}") for s in sorted(preds.keys() - labels.keys())]
    problems += [Problem(labels[s], f"no output named {s}.* in {pred_dir}") for s in sorted(labels.keys() - preds.keys())]
    if not pairs:
        raise UserError(f"no output in {pred_dir} has a label of the same name in {label_dir} "
                        f"({len(preds)} outputs, {len(labels)} labels; files are paired by name without extension)")
    return Pairing(pairs, problems)


def resolve_device(name: str) -> torch.device:
    """The device to score on: :func:`uegan.runtime.select_device` (``auto``: CUDA, then MPS,
    then the CPU), for this torchrun process's GPU when there are several."""
    return select_device(name, int(os.environ.get("LOCAL_RANK", "0")))


def _want_nima(config: EvaluationConfig) -> bool:
    if config.nima == "off":
        return False
    if config.nima == "on" or config.label_dir is None:
        return True
    if nima.nima_weights_available(config.nima_weights):
        return True
    log.info("NIMA skipped: no weights found (put %s at %s, or set %s, or pass --nima-weights)",
             nima.PUBLISHED_FILE, nima.nima_cache_path(), nima.ENV_VAR)
    return False


def evaluate(config: EvaluationConfig) -> EvaluationResult:
    """Measure every output image of ``config.pred_dir``; see the module docstring.

        from uegan import EvaluationConfig, evaluate
        result = evaluate(EvaluationConfig(pred_dir="enhanced/", label_dir="expert_c/"))
        print(result.summary()["psnr"])
    """
    if config.ssim_protocol not in metrics.SSIM_PROTOCOLS:
        raise UserError(f"unknown SSIM protocol {config.ssim_protocol!r}; "
                        f"choose one of {', '.join(metrics.SSIM_PROTOCOLS)}")
    if config.label_dir is None and config.nima == "off":
        raise UserError("nothing to compute: without labels NIMA is the only metric, and it is switched off")
    device = resolve_device(config.device)
    pairing = pair_by_stem(Path(config.pred_dir), None if config.label_dir is None else Path(config.label_dir))
    scorer = None
    weights_path = None
    if _want_nima(config):
        weights_path = nima.resolve_nima_weights(config.nima_weights)
        scorer = nima.NimaScorer(nima.load_nima(weights_path, device=device))

    results: list[ImageResult] = []
    problems = list(pairing.problems)
    with Progress(len(pairing.pairs), "evaluating", enabled=config.progress) as progress:
        for stem, pred_path, label_path in pairing.pairs:
            try:
                results.append(_evaluate_one(stem, pred_path, label_path, config.ssim_protocol,
                                             device, scorer))
            except _ImageProblem as problem:
                problems.append(Problem(problem.path, problem.reason))
            progress.update()
    for problem in problems:
        log.warning("not evaluated: %s: %s", problem.path, problem.reason)
    return EvaluationResult(results, problems, config.ssim_protocol, config.label_dir is not None, weights_path)


class _ImageProblem(Exception):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def _load(path: Path) -> np.ndarray:
    try:
        return load_rgb8(path)
    except UserError as error:
        raise _ImageProblem(path, f"unreadable ({error})") from error


def score_pair(pred: np.ndarray, label: np.ndarray, protocol: metrics.SsimProtocol = "published",
               device: torch.device | str = "cpu") -> dict[str, float]:
    """The full-reference metrics (PSNR, SSIM, CIEDE2000) of an 8-bit RGB output against its label (H x W x 3 each)
    under the published protocol: the one scoring of ``uegan evaluate`` and of the validation
    during training, so their figures agree. A ValueError for an image too small for the
    border crop or the SSIM window."""
    # torch.from_numpy warns about read-only arrays (images decoded by Pillow): copy those
    a = torch.from_numpy(np.require(pred, requirements=("C", "W"))).to(device)
    b = torch.from_numpy(np.require(label, requirements=("C", "W"))).to(device)
    return metrics.full_reference_scores(a, b, protocol)


def _evaluate_one(stem: str, pred_path: Path, label_path: Path | None, protocol: metrics.SsimProtocol,
                  device: torch.device, scorer: Any) -> ImageResult:
    pred = _load(pred_path)
    result = ImageResult(stem, pred_path, label_path)
    if label_path is not None:
        label = _load(label_path)
        if pred.shape != label.shape:
            raise _ImageProblem(pred_path, f"size {pred.shape[1]}x{pred.shape[0]} differs from its label "
                                           f"{label_path} ({label.shape[1]}x{label.shape[0]})")
        try:
            scores = score_pair(pred, label, protocol, device)
            for name, value in scores.items():
                setattr(result, name, value)
        except ValueError as error:  # too small for the crop or the window
            raise _ImageProblem(pred_path, str(error)) from error
    if scorer is not None:
        try:
            score = scorer.score_images([pred])[0]
        except ValueError as error:  # smaller than NIMA's crop
            raise _ImageProblem(pred_path, f"NIMA: {error}") from error
        result.nima, result.nima_std = score.mean, score.std
    return result


def evaluated_files(pred_dir: Path | None, label_dir: Path | None) -> list[Path]:
    """The image files that :func:`evaluate` reads from these folders (a missing folder: none)."""
    return [path for folder in (pred_dir, label_dir) if folder is not None for path in list_images(folder)]


def check_writable(paths: Iterable[Path | None], overwrite: bool, inputs: Iterable[Path] = ()) -> None:
    """Fail before any work when an output file could not be written at the end.

    Refused: one of ``inputs`` (even with ``overwrite``: paths are compared resolved, so ``..``
    and symbolic links count, and existing files also by device and inode), a folder, an
    existing file (when ``overwrite`` is off), two outputs that coincide, and a place where the
    file cannot be created (see :func:`folder_write_problem`)."""
    input_by_path = {Path(p).resolve(): Path(p) for p in inputs}
    input_by_inode: dict[tuple[int, int], Path] | None = None
    seen: set[Path] = set()
    for path in paths:
        if path is None:
            continue
        resolved = Path(path).resolve()
        same = input_by_path.get(resolved)
        if same is None and resolved.is_file():
            if input_by_inode is None:
                input_by_inode = {}
                for original in input_by_path.values():
                    with contextlib.suppress(OSError):
                        stat = original.stat()
                        input_by_inode[(stat.st_dev, stat.st_ino)] = original
            stat = resolved.stat()
            same = input_by_inode.get((stat.st_dev, stat.st_ino))
        if same is not None:
            also = "" if str(same) == str(path) else f" ({same})"
            raise UserError(f"{path} is one of the images being evaluated{also}: write the "
                            f"results to another file")
        if resolved in seen:
            raise UserError(f"{path} is named twice as an output")
        seen.add(resolved)
        if resolved.is_dir():
            raise UserError(f"{path} is a folder, not a file: give a file name")
        if resolved.exists() and not overwrite:
            raise UserError(f"{path} already exists (pass --overwrite to replace it)")
        problem = folder_write_problem(resolved.parent)
        if problem is not None:
            raise UserError(f"cannot write {path}: {problem}")


def _write_bytes(path: str | Path, data: bytes, overwrite: bool) -> None:
    """Atomically; an OSError without a file name (``write`` on a full disk) gets ``path``."""
    try:
        with atomic_path(path, overwrite=overwrite) as temporary:
            temporary.write_bytes(data)
    except OSError as error:
        error.filename = str(path) if error.filename is None else error.filename
        raise


def write_json(result: EvaluationResult, path: str | Path, overwrite: bool = False) -> None:
    # ASCII: a file name that is not UTF-8 (surrogate escapes) is written as \udcXX escapes
    text = json.dumps(result.to_json(), indent=1, allow_nan=False) + "\n"
    _write_bytes(path, text.encode("ascii"), overwrite)


def write_csv(result: EvaluationResult, path: str | Path, overwrite: bool = False) -> None:
    # UTF-8; a file name that is not UTF-8 (surrogate escapes from os.fsdecode) keeps its bytes
    _write_bytes(path, result.to_csv().encode("utf-8", errors="surrogateescape"), overwrite)


def format_summary(result: EvaluationResult) -> str:
    """A few lines for people: true means, the published-script figures, the problem count."""
    summary = result.summary()
    lines = [f"{summary['count']} images evaluated"
             + (f" (SSIM: {result.ssim_protocol} protocol)" if result.has_labels else " (no labels: NIMA only)")]
    if "psnr" in summary:
        lines.append(f"PSNR  {summary['psnr']:.4f} dB")
    if "ssim" in summary:
        lines.append(f"SSIM  {summary['ssim']:.6f}")
    if "ciede2000" in summary:
        lines.append(f"CIEDE2000  {summary['ciede2000']:.4f} (colour difference to the label: lower is better)")
    if "nima" in summary:
        lines.append(f"NIMA  {summary['nima']:.4f} (std of the score distribution {summary['nima_std']:.4f})")
    published = result.published_script_average()
    if published is not None:
        n = summary["count"]
        lines.append(f"(true means; the published scripts divide by N-1 and would print PSNR "
                     f"{published['psnr']:.4f}, SSIM {published['ssim']:.6f}: x{n / (n - 1):.4g})")
    if result.problems:
        lines.append(f"{len(result.problems)} files not evaluated (listed above)")
    return "\n".join(lines)
