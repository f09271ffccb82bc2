"""Indonesian price and area notation: ``Rp 1,5 M``, ``Rp 850 jt``, ``Rp 3.500.000/m²``, ``per are``, ha.

Listing portals write prices the Indonesian way: ``.`` groups thousands, ``,`` marks
decimals, and magnitudes are words (``rb``/``ribu`` 10³, ``jt``/``juta`` 10⁶,
``M``/``miliar``/``milyar`` 10⁹, ``T``/``triliun`` 10¹²). Structured data sometimes uses
the schema.org convention (a plain ``1500000000.00``) or English grouping
(``1,500,000``). One rule reads all of them (docs/market.md, "Price notation"):

- both ``.`` and ``,`` present: the one that comes last is the decimal mark;
- several ``.`` or several ``,``: they group thousands;
- one ``,``: decimal mark (Indonesian);
- one ``.``: groups thousands when exactly three digits follow (``850.000``), else a
  decimal mark (``1.5 M``, ``1500000000.00``).

A price may be per m² (``/m²``, ``per m2``, ``per meter``), per are (100 m²), per
hectare (``/ha``, ``per hektar``) or, by default, for the whole plot.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final, Literal

Basis = Literal["total", "m2", "are", "ha"]

#: Square metres per unit of area.
M2_PER: Final[dict[str, float]] = {"m2": 1.0, "are": 100.0, "ha": 10_000.0}

_MAGNITUDES: Final[dict[str, float]] = {
    "rb": 1e3,
    "ribu": 1e3,
    "k": 1e3,
    "jt": 1e6,
    "juta": 1e6,
    "million": 1e6,
    "m": 1e9,
    "miliar": 1e9,
    "milyar": 1e9,
    "mlyr": 1e9,
    "billion": 1e9,
    "t": 1e12,
    "triliun": 1e12,
}
_NUMBER = r"\d{1,3}(?:[.,]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?"
_MAGNITUDE = r"miliar|milyar|mlyr|juta|ribu|triliun|million|billion|jt|rb|m|t|k"
# Units of area as written after a number or after "/" / "per"; "m" alone is not one (it is miliar).
_AREA_UNIT = r"m²|m2|sqm|meter(?:\s*persegi)?|are|hektare|hektar|hectares?|ha"
_PRICE = re.compile(
    rf"^\s*(?:rp\.?|idr)?\s*(?P<number>{_NUMBER})\s*(?:(?P<magnitude>{_MAGNITUDE})\.?(?![a-z²0-9]))?"
    rf"\s*(?:(?:/|\bper\b)\s*(?:1\s*)?(?P<unit>{_AREA_UNIT})(?![a-z]))?\s*\.?\s*$",
    re.IGNORECASE,
)
_AREA = re.compile(rf"^\s*(?P<number>{_NUMBER})\s*(?P<unit>{_AREA_UNIT})?(?![a-z])\s*$", re.IGNORECASE)


class NotationError(ValueError):
    """Text that is not a price or an area in a notation we read; the message quotes it."""


@dataclass(frozen=True)
class Price:
    """An amount in IDR and what it is for: the whole plot or one m² / are / hectare."""

    idr: float
    basis: Basis = "total"

    def per_m2(self, area_m2: float | None = None) -> float:
        """IDR per m²; a whole-plot price needs the plot's area."""
        if self.basis != "total":
            return self.idr / M2_PER[self.basis]
        if area_m2 is None or not area_m2 > 0:
            raise NotationError(f"a whole-plot price of IDR {self.idr:,.0f} needs the plot's area")
        return self.idr / area_m2


def parse_number(text: str) -> float:
    """A number in Indonesian, English or schema.org notation (module docstring's rule)."""
    digits = text.strip()
    if not re.fullmatch(_NUMBER, digits):
        raise NotationError(f"not a number: {text!r}")
    dots, commas = digits.count("."), digits.count(",")
    if dots and commas:
        decimal = "." if digits.rfind(".") > digits.rfind(",") else ","
        group = "," if decimal == "." else "."
        digits = digits.replace(group, "").replace(decimal, ".")
    elif dots > 1 or commas > 1:
        digits = digits.replace(".", "").replace(",", "")
    elif commas == 1:
        digits = digits.replace(",", ".")
    elif dots == 1 and len(digits) - digits.index(".") - 1 == 3:
        digits = digits.replace(".", "")
    return float(digits)


def _unit_key(unit: str) -> str:
    unit = unit.lower()
    if unit.startswith(("hekt", "hect")) or unit == "ha":
        return "ha"
    if unit == "are":
        return "are"
    return "m2"


def parse_price(text: str) -> Price:
    """Read ``Rp 1,5 M``, ``Rp 850 jt``, ``Rp 3.500.000/m²``, ``Rp 45 jt per are``, ``Rp 2 M/ha``."""
    match = _PRICE.match(text.replace("\xa0", " "))
    if match is None:
        raise NotationError(f"not a price in a notation we read: {text!r}")
    amount = parse_number(match["number"])
    magnitude = match["magnitude"]
    if magnitude:
        amount *= _MAGNITUDES[magnitude.lower()]
    if not (math.isfinite(amount) and amount > 0):
        raise NotationError(f"price must be positive: {text!r}")
    unit = match["unit"]
    return Price(idr=amount, basis="total" if unit is None else _unit_key(unit))  # type: ignore[arg-type]


def parse_area(text: str, default_unit: str = "m2") -> float:
    """Square metres from ``250 m²``, ``1.200 m2``, ``5 are``, ``1,5 ha``, ``2 hektar``."""
    match = _AREA.match(text.replace("\xa0", " "))
    if match is None:
        raise NotationError(f"not an area in a notation we read: {text!r}")
    value = parse_number(match["number"]) * M2_PER[_unit_key(match["unit"] or default_unit)]
    if not value > 0:
        raise NotationError(f"area must be positive: {text!r}")
    return value


def format_idr(value: float) -> str:
    """Whole rupiah the Indonesian way, ``Rp 3.500.000``: what reports print and parse_price reads."""
    return "Rp " + f"{round(value):,}".replace(",", ".")
