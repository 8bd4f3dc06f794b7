"""Make the picture at the top of the README from a `uegan demo` output folder.

Rows: held-out photos of the demo; columns: degraded input | published UEGAN | recommended
variant | original, each captioned with PSNR and CIEDE2000 against the original (from the demo's
results.json). The result is a small PNG (256 colours, dithered) meant to be committed:

    uegan demo --out /tmp/demo --seed 0
    python docs/make_demo_figure.py /tmp/demo docs/demo-figure.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

CELL = 180          # the long side of each picture, in pixels
CAPTION = 30        # height of the caption band under each picture
HEADER = 26         # height of the column titles
DEFAULT_ROWS = ("chelsea-1", "coffee-2")


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default()


def make_figure(demo_dir: Path, rows: tuple[str, ...]) -> Image.Image:
    results = json.loads((demo_dir / "results.json").read_text(encoding="utf-8"))
    models = [model["variant"] for model in results["models"]]
    by_name = {row["name"]: row for row in results["held_out"]}
    missing = [name for name in rows if name not in by_name]
    if missing:
        raise SystemExit(f"{demo_dir}: no held-out photo called {', '.join(missing)}; "
                         f"choose from {', '.join(by_name)}")
    compare = results["settings"].get("compare_with")
    titles = ["input"] + [f"published UEGAN ({m})" if m == compare else m for m in models] + ["original"]
    kinds = ["input"] + models + ["original"]

    sample = Image.open(demo_dir / "images" / f"{rows[0]}-input.png")
    scale = CELL / max(sample.size)
    width, height = round(sample.size[0] * scale), round(sample.size[1] * scale)
    canvas = Image.new("RGB", (width * len(kinds), HEADER + (height + CAPTION) * len(rows)), "white")
    draw = ImageDraw.Draw(canvas)
    title_font, caption_font = _font(13), _font(12)
    for column, title in enumerate(titles):
        draw.text((column * width + 4, 6), title, fill="black", font=title_font)
    for r, name in enumerate(rows):
        row = by_name[name]
        top = HEADER + r * (height + CAPTION)
        for column, kind in enumerate(kinds):
            picture = Image.open(demo_dir / "images" / f"{name}-{kind}.png").convert("RGB")
            canvas.paste(picture.resize((width, height), Image.Resampling.LANCZOS), (column * width, top))
            scores = row["input"] if kind == "input" else row["outputs"].get(kind)
            text = name if kind == "original" else (
                f"{scores['psnr']:.2f} dB, dE00 {scores['ciede2000']:.1f}" if scores else "")
            draw.text((column * width + 4, top + height + 7), text, fill="black", font=caption_font)
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("demo_dir", type=Path, help="a folder written by `uegan demo`")
    parser.add_argument("out", type=Path, help="the PNG to write (refused if it exists, unless --overwrite)")
    parser.add_argument("--rows", default=",".join(DEFAULT_ROWS),
                        help="held-out photos to show, comma separated")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    if args.out.exists() and not args.overwrite:
        raise SystemExit(f"{args.out} exists: pass --overwrite to replace it")
    figure = make_figure(args.demo_dir, tuple(name.strip() for name in args.rows.split(",")))
    # 256 colours, dithered: a fifth of the size of the full-colour file, for the repository
    figure.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG
                    ).save(args.out, optimize=True)
    print(f"{args.out}: {figure.size[0]}x{figure.size[1]}")


if __name__ == "__main__":
    main()
