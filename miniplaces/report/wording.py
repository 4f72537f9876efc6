"""Words from numbers, shared by the answers, the section glue and the templates (one home each)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


def pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f} %"


def points_of(x: float, digits: int = 1) -> str:
    """A difference of probabilities in percentage points."""
    return f"{100 * x:.{digits}f}"


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word if n == 1 else (words or word + 's')}"


def series(items: list[Any], last: str = "and") -> str:
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


def span(values: list[float], fmt: Callable[[float], str], unit: str = "") -> str:
    """'from 3 to 7 units' style range, or the single value when all are equal."""
    lo, hi = min(values), max(values)
    return f"{fmt(lo)}{unit}" if fmt(lo) == fmt(hi) else f"{fmt(lo)} to {fmt(hi)}{unit}"


def capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def p_value(p: float | None) -> str:
    """'p = 0.042', or 'p < 0.001' where three decimals would print a misleading 0.000."""
    return "p n/a" if p is None else "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def signed(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:+.{digits}f}"


NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


def units_phrase(k: int) -> str:
    """'one unit', 'two units', '12 units'."""
    return f"{NUMBER_WORDS.get(k, k)} unit{'s' if k != 1 else ''}"
