"""``uegan prepare-fivek``: the study's FiveK split from the user's own exports."""

from __future__ import annotations

import argparse
import os


from uegan.apps.fivek import DEFAULT_VAL_COUNT, EXPORT_STEPS, MANIFEST_NAME, NOT_DEVELOPED
from uegan.apps.fivek_prepare import PrepareReport, format_ids, prepare_fivek
from uegan.progress import Progress

EPILOG = f"""\
Output folders (8-bit sRGB PNG):
  OUT/train/high   Expert C a0001-a2250, short edge 512     (high-quality set)
  OUT/train/low    inputs   a2251-a4500, short edge 512     (low-quality set)
  OUT/test/low     inputs   a4501-a5000, 512x512            (test inputs)
  OUT/test/label   Expert C a4501-a5000, 512x512            (test references)
  OUT/val/low, OUT/val/label   a copy of --val-count test pairs spaced evenly over
                   a4501-a5000 (default {DEFAULT_VAL_COUNT}: a4501, a4511, ...), for watching training only
  OUT/{MANIFEST_NAME}  counts, missing files, SHA-256 of every output and of its source

Test images are resized to a short edge of 512 and centre-cropped to 512x512. 16-bit TIFFs
in ProPhoto RGB (as FiveK distributes them) are converted to sRGB (Bradford D50->D65).
FiveK's DNG camera originals are not read: the report names them and the Lightroom export
they need (InputAsShotZeroed for the inputs, Expert C's version for --expert-c).
Running the command again recomputes and rewrites nothing that is up to date. Earlier outputs
are removed only when the split no longer holds them (a smaller --val-count, a renamed source);
an earlier output whose source is missing or ambiguous is kept, and the source is named.
Exit status: 0 when the split is complete, 1 when files are missing (0 with --allow-missing),
some failed, or earlier outputs were kept without their source, 2 on a usage error."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare-fivek", help="build the study's FiveK train/test split from your FiveK exports",
        description="Build the published MIT-Adobe FiveK split of the study from your own exports "
                    "of the data set (files named aNNNN-*.png/.jpg/.tif).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", required=True, metavar="DIR",
                        help="your exports of the FiveK inputs (InputAsShotZeroed), a0001-a5000 "
                             "(only a2251-a5000 are used)")
    parser.add_argument("--expert-c", required=True, metavar="DIR",
                        help="your exports of Expert C's retouches (only a0001-a2250 and "
                             "a4501-a5000 are used)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--val-count", type=int, default=DEFAULT_VAL_COUNT, metavar="N",
                        help=f"test pairs copied to OUT/val (default {DEFAULT_VAL_COUNT}; 0: none)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), metavar="N",
                        help="images converted in parallel (default: the number of CPU cores, at most 8)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that do not match the manifest")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress: by default a bar on a terminal, else a line every "
                             "10 s with the count, the rate and the ETA")
    parser.add_argument("--allow-missing", action="store_true",
                        help="exit with status 0 even when source files are missing")
    parser.set_defaults(func=run)


def _progress(enabled: bool):
    """``(update, close)`` for the conversion: a bar on a terminal, else a line every 10 s."""
    if not enabled:
        return None, None
    progress: Progress | None = None

    def update(done: int, total: int) -> None:
        nonlocal progress
        if progress is None:
            progress = Progress(total, "converting")
        progress.update()

    def close() -> None:
        if progress is not None:
            progress.close()

    return update, close


def print_report(report: PrepareReport, allow_missing: bool) -> None:
    print(f"FiveK split in {report.out}")
    for folder, expected in report.expected.items():
        flag = "" if report.counts[folder] == expected else "  (incomplete)"
        print(f"  {folder:<11} {report.counts[folder]:>5} / {expected}{flag}")
    if report.written or report.removed:
        print(f"written {len(report.written)}, up to date {len(report.up_to_date)}"
              + (f", removed {len(report.removed)} earlier outputs no longer in the split"
                 if report.removed else ""))
    else:
        print(f"up to date: nothing to do ({len(report.up_to_date)} files checked)")
    for source_set, label in (("inputs", "--inputs"), ("expert-c", "--expert-c")):
        if report.missing[source_set]:
            print(f"missing in {label}: {len(report.missing[source_set])} "
                  f"({format_ids(report.missing[source_set])})")
        if report.duplicates[source_set]:
            print(f"ambiguous in {label} (several files for one id, none used): "
                  + "; ".join(f"{k}: {', '.join(v)}" for k, v in list(report.duplicates[source_set].items())[:5]))
        if report.originals[source_set]:
            names = report.originals[source_set]
            print(f"FiveK DNG originals in {label}, not used: {len(names)} "
                  f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})")
            print(f"  they need exporting first: {EXPORT_STEPS[source_set]}; {NOT_DEVELOPED}")
        if report.unrecognised[source_set]:
            names = report.unrecognised[source_set]
            print(f"ignored in {label} (not named aNNNN-*.png/.jpg/.tif): {len(names)} "
                  f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})")
        if report.unused[source_set]:
            print(f"not part of the split in {label} (as intended): {report.unused[source_set]} files")
    for source in report.unavailable[:10]:
        print(f"KEPT: {source.describe()}")
    if len(report.unavailable) > 10:
        print(f"... and {len(report.unavailable) - 10} more sources missing or ambiguous, their "
              f"earlier outputs kept (see kept_without_source in {MANIFEST_NAME})")
    for output, reason in list(report.failed.items())[:10]:
        print(f"FAILED {output}: {reason}")
    if len(report.failed) > 10:
        print(f"... and {len(report.failed) - 10} more failures (see {MANIFEST_NAME})")
    if report.conflicts:
        print(f"NOT REPLACED (exist but do not match {MANIFEST_NAME}): {len(report.conflicts)} files, "
              f"e.g. {report.conflicts[0]}; pass --overwrite to rebuild them")
    if report.stale:
        print(f"NOT PART OF THE SPLIT (remove them before training): {len(report.stale)} files in "
              f"{report.out}, e.g. {report.stale[0]}")
    if not report.complete and not allow_missing:
        print("the split is incomplete: add the missing files and run the command again "
              "(or pass --allow-missing to accept a partial split)")


def run(args: argparse.Namespace) -> int:
    update, close = _progress(not (args.no_progress or getattr(args, "quiet", False)))
    try:
        report = prepare_fivek(args.inputs, args.expert_c, args.out, val_count=args.val_count,
                               overwrite=args.overwrite, workers=max(1, args.workers), progress=update)
    finally:
        if close is not None:
            close()
    print_report(report, args.allow_missing)
    if not report.ok or (not report.complete and not args.allow_missing):
        return 1
    return 0
