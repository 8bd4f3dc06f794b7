"""``uegan variants``: list the named model variants."""

from __future__ import annotations

import argparse

from uegan.cli import EXIT_OK
from uegan.variants import VARIANTS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "variants", help="list the model variants and their published FiveK results",
        description="List the model variants (use their names with --variant).")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = [("variant", "identity loss", "generator changes", "published PSNR/SSIM/NIMA")]
    for v in VARIANTS.values():
        published = "/".join(str(x) for x in v.published) if v.published else "-"
        rows.append((v.name, v.identity_criterion, v.architecture(), published))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    for v in VARIANTS.values():
        print(f"\n{v.name}: {v.summary}")
    return EXIT_OK
