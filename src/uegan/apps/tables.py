"""Markdown tables and figure cells, shared by ``uegan report`` and ``uegan study``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from uegan.metrics import DIGITS


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def figure_cell(value: Any, metric: str) -> str:
    """A metric's figure with its decimals (:data:`uegan.metrics.DIGITS`), or a dash."""
    number = finite(value)
    return "—" if number is None else f"{number:.{DIGITS[metric]}f}"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Markdown lines of a table (a ``|`` inside a cell is escaped)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines
