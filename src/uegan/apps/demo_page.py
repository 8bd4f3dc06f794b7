"""What ``uegan demo`` shows: the console table and the self-contained HTML page."""

from __future__ import annotations

import html
from pathlib import Path

from uegan.apps.demo_data import HELD_OUT_PHOTOS, TRAINING_PHOTOS
from uegan.apps.demo_results import METRICS, RANDOM_VGG_NOTE, DemoResult, DemoSettings, Scores
from uegan.metrics import DIGITS, LOWER_IS_BETTER
from uegan.variants import RECOMMENDED_VARIANT


def _scores_text(scores: Scores) -> str:
    return f"{scores['psnr']:>7.2f} {scores['ssim']:>7.4f} {scores['ciede2000']:>6.2f}"


def format_table(result: DemoResult) -> str:
    """The console table: input and each model against the original, per held-out photo and mean."""
    variants = [run.variant for run in result.models]
    columns = ["input"] + variants
    width = 22
    header = f"{'held-out photo':<14}" + "".join(f" | {name:^{width}}" for name in columns)
    units = f"{'':<14}" + " | {:>7} {:>7} {:>6}".format("PSNR", "SSIM", "dE00") * len(columns)
    lines = [header, units, "-" * len(units)]
    for row in result.rows:
        cells = [row.input] + [row.outputs[v] for v in variants]
        lines.append(f"{row.name:<14}" + "".join(f" | {_scores_text(c)}" for c in cells))
    lines.append("-" * len(units))
    means = [{m: result.mean(m) for m in METRICS}] + [{m: result.mean(m, v) for m in METRICS}
                                                       for v in variants]
    lines.append(f"{'mean':<14}" + "".join(f" | {_scores_text(c)}" for c in means))
    return "\n".join(lines)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
table.metrics { border-collapse: collapse; margin: 1em 0; }
table.metrics td, table.metrics th { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
table.metrics td:first-child, table.metrics th:first-child { text-align: left; }
.note { background: #fff4d6; border: 1px solid #e8c45a; padding: 0.6em 1em; }
figure { display: inline-block; margin: 0 8px 0 0; vertical-align: top; }
figure img { display: block; max-width: 320px; }
figcaption { font-size: 0.9em; text-align: center; padding: 2px; }
.pair { margin: 1.5em 0; }
.better { color: #176b1d; font-weight: bold; }
.worse { color: #a11d1d; }
"""


def _metric_cell(metric: str, value: float, reference: float) -> str:
    better = value < reference if metric in LOWER_IS_BETTER else value > reference
    css = "better" if better else "worse"
    return f'<td class="{css}">{value:.{DIGITS[metric]}f}</td>'


def _title(variant: str, settings: DemoSettings) -> str:
    if variant == settings.compare_with:
        return f"published UEGAN ({variant})"
    return f"{variant} (recommended)" if variant == RECOMMENDED_VARIANT else variant


def render_html(result: DemoResult) -> str:
    """A self-contained page: the table, then input / each model / original side by side."""
    esc = html.escape
    s = result.settings
    variants = [run.variant for run in result.models]

    def row_html(label: str, scores_in: Scores, scores_out: list[Scores], tag: str) -> str:
        cells = "".join(f"<{tag}>{scores_in[m]:.{DIGITS[m]}f}</{tag}>" for m in METRICS)
        for scores in scores_out:
            cells += "".join(_metric_cell(m, scores[m], scores_in[m]) for m in METRICS)
        return f"<tr><{tag}>{esc(label)}</{tag}>{cells}</tr>"

    rows = "".join(row_html(r.name, r.input, [r.outputs[v] for v in variants], "td") for r in result.rows)
    mean = row_html("mean", {m: result.mean(m) for m in METRICS},
                    [{m: result.mean(m, v) for m in METRICS} for v in variants], "th")
    group_header = "".join(f'<th colspan="3">{esc(_title(v, s))}</th>' for v in variants)
    unit_header = "<th>PSNR (dB)</th><th>SSIM</th><th>CIEDE2000</th>" * (1 + len(variants))

    def figure(name: str, kind: str, caption: str) -> str:
        return (f'<figure><img src="images/{esc(name)}-{esc(kind)}.png" alt="{esc(caption)}">'
                f"<figcaption>{esc(caption)}</figcaption></figure>")

    figures = "".join(
        f'<div class="pair"><h3>{esc(r.name)}</h3><p>degraded with {esc(r.degradation)}</p>'
        + figure(r.name, "input", f"input: {r.input['psnr']:.2f} dB, dE {r.input['ciede2000']:.2f}")
        + "".join(figure(r.name, v, f"{_title(v, s)}: {r.outputs[v]['psnr']:.2f} dB, "
                                    f"dE {r.outputs[v]['ciede2000']:.2f}") for v in variants)
        + figure(r.name, "original", "original") + "</div>"
        for r in result.rows)
    vgg_note = (f'<p class="note">{esc(RANDOM_VGG_NOTE)}</p>' if result.vgg == "random"
                else f"<p>Fidelity loss: VGG19 with ImageNet weights ({esc(result.vgg)}).</p>")
    trained = "; ".join(f"{esc(run.variant)}: {run.steps} steps at x{run.lr_scale:g} the published "
                        f"learning rates, {run.train_seconds:.0f} s" for run in result.models)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>uegan demo</title><style>{_STYLE}</style></head>
<body>
<h1>UEGAN demo: unsupervised enhancement of degraded photos</h1>
<p>Trained without any pairs, on scikit-image's sample photos
{esc(', '.join(Path(n).stem for n in TRAINING_PHOTOS))}, each cut in two: one half as it is in the
high-quality set, the other half degraded {s.low_copies} times at random (exposure, white balance,
gamma, contrast) in the low-quality set. The
held-out photos ({esc(', '.join(Path(n).stem for n in HELD_OUT_PHOTOS))}) were degraded the same way and
never seen in training; their originals are the references.</p>
{vgg_note}
<p>Reduced models, UEGAN objective unchanged: conv_dim {s.conv_dim} (published 32),
{s.image_size}x{s.image_size} crops, batch {s.batch_size}, seed {s.seed}, on the CPU
({result.threads} thread(s)): {trained}.</p>
<table class="metrics">
<tr><th rowspan="2">held-out photo</th><th colspan="3">input</th>{group_header}</tr>
<tr>{unit_header}</tr>
{rows}
{mean}
</table>
<p>All against the original. Green: better than the input (PSNR and SSIM higher, CIEDE2000
colour difference lower); red: worse. Metrics as in the published FiveK protocol: 8-bit RGB,
4 pixels cropped from every border; SSIM with a 7x7 uniform window (scikit-image's defaults),
mean over channels; CIEDE2000 mean over pixels.</p>
{figures}
</body></html>
"""
