"""The model card that travels with exported weights: what they are, what they were trained on,
how far, how they scored, under which protocol, and the licence of the data.

A :class:`ModelCard` holds the facts (stored as JSON in the export's metadata and in the
``config.json`` of a pretrained folder, so a re-export keeps them) and :func:`render_card` writes
them as the ``README.md`` of the folder (Hugging Face's card layout: YAML front matter, then
Markdown). Facts come from files, so reading them is lenient: a value of the wrong type is
left out, never an error; the weights are what a loader must get right.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from uegan.metrics import DIGITS

FIVEK_URL = "https://data.csail.mit.edu/graphics/fivek/"
PUBLISHED_CODE = "https://github.com/eezkni/UEGAN"
# data facts a card knows: the folders of a run and how many images each held
DATA_KEYS = ("low", "high", "val_low", "val_label", "low_images", "high_images", "val_pairs")
VALIDATION_KEYS = ("psnr", "ssim", "ciede2000", "epoch", "step")


@dataclass
class ModelCard:
    """The facts of a model card; ``None`` or empty: not recorded."""

    variant: str | None = None
    source: str = ""                 # where the weights come from, in words
    steps: int | None = None         # optimiser steps trained
    epochs: int | None = None        # epochs completed
    init_from: str | None = None     # the weights the training started from (--init-from)
    data: dict[str, Any] = field(default_factory=dict)        # DATA_KEYS
    validation: dict[str, Any] = field(default_factory=dict)  # the best validation: VALIDATION_KEYS
    uegan_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Any) -> "ModelCard":
        """The card stored in a file; whatever does not fit is left out."""
        if not isinstance(values, Mapping):
            return cls()
        text = {name: values.get(name) for name in ("variant", "init_from", "uegan_version")}
        return cls(
            **{k: v for k, v in text.items() if isinstance(v, str)},
            source=values.get("source") if isinstance(values.get("source"), str) else "",
            steps=_integer(values.get("steps")), epochs=_integer(values.get("epochs")),
            data=_known(values.get("data"), DATA_KEYS),
            validation=_known(values.get("validation"), VALIDATION_KEYS))


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _known(values: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """The entries of ``values`` named in ``keys`` that are plain strings or numbers."""
    if not isinstance(values, Mapping):
        return {}
    return {key: values[key] for key in keys
            if isinstance(values.get(key), (str, int, float)) and not isinstance(values[key], bool)}


def card_from_training_checkpoint(data: Mapping[str, Any], source: str) -> ModelCard:
    """The card of the generator in a training checkpoint of this project (a dict as saved)."""
    config = data.get("config") if isinstance(data.get("config"), Mapping) else {}
    streams = data.get("streams") if isinstance(data.get("streams"), Mapping) else {}
    sizes = {f"{name}_images": stream.get("size") for name, stream in streams.items()
             if isinstance(stream, Mapping)}
    variant = data.get("variant")
    step, version = _integer(data.get("step")), data.get("uegan_version")
    return ModelCard(
        variant=variant if isinstance(variant, str) else None,
        source=f"training checkpoint {source}" + (f" (step {step})" if step is not None else ""),
        steps=step, epochs=_integer(data.get("epoch")),
        init_from=config.get("init_from") if isinstance(config.get("init_from"), str) else None,
        data=_known({**config, **sizes}, DATA_KEYS),
        validation=_known(data.get("best"), VALIDATION_KEYS),
        uegan_version=version if isinstance(version, str) else None)


def _fact(value: Any, unit: str = "") -> str:
    return "not recorded" if value is None or value == "" else f"{value}{unit}"


def _folder(card: ModelCard, name: str, count: str) -> str:
    folder, number = card.data.get(name), card.data.get(count)
    if folder is None and number is None:
        return "not recorded"
    return f"`{_fact(folder)}`" + (f" ({number} images)" if number is not None else "")


def _training_rows(card: ModelCard) -> list[str]:
    pairs = card.data.get("val_pairs")
    rows = [
        ("variant", f"`{card.variant}`" if card.variant else "not recorded"),
        ("exported from", _fact(card.source)),
        ("optimiser steps", _fact(card.steps)),
        ("epochs completed", _fact(card.epochs)),
        ("started from", f"`{card.init_from}`" if card.init_from else
         ("random initialisation" if card.steps is not None else "not recorded")),
        ("low-quality photos (inputs)", _folder(card, "low", "low_images")),
        ("high-quality photos (the style)", _folder(card, "high", "high_images")),
        ("validation inputs / labels", "not recorded" if card.data.get("val_low") is None else
         f"`{card.data['val_low']}` / `{_fact(card.data.get('val_label'))}`"
         + (f" ({pairs} pairs)" if pairs is not None else "")),
    ]
    return ["| | |", "|---|---|"] + [f"| {name} | {value} |" for name, value in rows]


def _figure(value: Any, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _validation_text(card: ModelCard) -> str:
    best = card.validation
    if "psnr" not in best:
        return "No validation figures are recorded for these weights."
    figures = [f"{label} {_figure(best[name], DIGITS[name])}{unit}"
               for name, label, unit in (("psnr", "PSNR", " dB"), ("ssim", "SSIM", ""),
                                         ("ciede2000", "CIEDE2000", "")) if name in best]
    where = (f" (epoch {best['epoch']}, step {best['step']})"
             if "epoch" in best and "step" in best else "")
    return (f"Best validation during training{where}: {', '.join(figures)}; true means over the "
            f"validation pairs above. They measure the run's own validation set: measure on "
            f"your own test set with `uegan evaluate` before relying on them.")


def _use_lines(weights_file: str) -> list[str]:
    if weights_file.endswith(".onnx"):
        return [f"`{weights_file}` runs with onnxruntime: input `input`, N x 3 x H x W in [-1, 1] "
                "(`2 p / 255 - 1`; H and W multiples of 16), output `output` in [-1, 1]."]
    where = "THIS_FOLDER" if weights_file == "model.safetensors" else weights_file
    return ["```python", "from uegan import Enhancer",
            f"enhancer = Enhancer.from_pretrained(\"{where}\")   # or a Hugging Face Hub id",
            "enhancer.enhance_file(\"photo.jpg\", \"photo-enhanced.jpg\")", "```", "",
            f"or `uegan enhance photos/ --checkpoint {weights_file} --out enhanced/`; fine-tune "
            f"on your own photos with `uegan train --init-from {weights_file} ...` (the "
            "generator starts from these weights, the discriminator from its random "
            "initialisation)."]


def render_card(card: ModelCard, weights_file: str = "model.safetensors") -> str:
    """The card as Markdown with YAML front matter (the ``README.md`` of a pretrained folder)."""
    title = f"UEGAN generator `{card.variant}`" if card.variant else "UEGAN generator"
    lines = [
        "---", "library_name: uegan", "license: other", "tags:", "- image-enhancement",
        "- unsupervised", "- gan", "- uegan", "---", "", f"# {title}", "",
        "A generator of UEGAN (Ni et al., \"Towards Unsupervised Deep Image Enhancement with "
        "Generative Adversarial Network\", IEEE TIP 2020), trained without pairs: it retouches "
        "low-quality photos towards the look of a set of high-quality photos. Written by uegan"
        + (f" {card.uegan_version}" if card.uegan_version else "") + ".", "",
        "## Use", "", *_use_lines(weights_file), "",
        "Intended use: enhancing photos like the training inputs towards the training style, and "
        "research on unsupervised enhancement. The generator changes colour and tone; it is not a "
        "measurement instrument, and photos unlike its training inputs can come out worse. Look "
        "at the results.", "",
        "## Training", "", *_training_rows(card), "",
        "## Validation", "", _validation_text(card), "",
        "## Evaluation protocol", "",
        "The published UEGAN protocol, as `uegan evaluate` computes it: outputs rounded to 8-bit "
        "RGB as the published tester writes them, 4 pixels cropped from every border, float64; "
        "PSNR = 10 log10(255^2 / MSE); SSIM as the published scripts compute it (scikit-image, "
        "7x7 uniform window); CIEDE2000 in CIE Lab (D65); true means over the images (the "
        "published scripts divide by N - 1).", "",
        "## Licence of the data", "",
        "Weights carry what they learnt from their training photos: use them only as the licence "
        "of those photos allows. The published UEGAN setup trains on MIT-Adobe FiveK "
        f"({FIVEK_URL}), whose photos are licensed for research use only; weights trained on it "
        "are for research use. The code: uegan (MIT licence), after the published UEGAN code "
        f"({PUBLISHED_CODE}, MIT licence).", "",
    ]
    return "\n".join(lines)
