"""Indonesian price notation, by example and by property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccapi_monitor.market.parsing import (
    NotationError,
    Price,
    format_idr,
    parse_area,
    parse_number,
    parse_price,
)


@pytest.mark.parametrize(
    ("text", "idr", "basis"),
    [
        ("Rp 1,5 M", 1_500_000_000, "total"),
        ("Rp 850 jt", 850_000_000, "total"),
        ("Rp 3.500.000/m²", 3_500_000, "m2"),
        ("Rp 3,5 juta / m2", 3_500_000, "m2"),
        ("Rp 45 jt per are", 45_000_000, "are"),
        ("Rp 2 M/ha", 2_000_000_000, "ha"),
        ("Rp 1,2 miliar per hektar", 1_200_000_000, "ha"),
        ("Rp. 750 rb per meter", 750_000, "m2"),
        ("IDR 1500000000.00", 1_500_000_000, "total"),
        ("Rp1.500.000.000", 1_500_000_000, "total"),
        ("Rp 1.234.567,89", 1_234_567.89, "total"),
        ("1,500,000", 1_500_000, "total"),
        ("Rp 2 T", 2e12, "total"),
        ("Rp\xa0850\xa0jt", 850_000_000, "total"),
    ],
)
def test_price_notations(text: str, idr: float, basis: str) -> None:
    assert parse_price(text) == Price(idr=pytest.approx(idr), basis=basis)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "Rp", "harga nego", "Rp 0", "Rp 1,5 X", "Rp -5 jt", "USD 100 per sqft"])
def test_not_prices(text: str) -> None:
    with pytest.raises(NotationError, match=r"price|number"):
        parse_price(text)


@pytest.mark.parametrize(
    ("text", "m2"),
    [
        ("250 m²", 250),
        ("1.200 m2", 1200),
        ("5 are", 500),
        ("1,5 ha", 15_000),
        ("2 hektar", 20_000),
        ("300", 300),
    ],
)
def test_areas(text: str, m2: float) -> None:
    assert parse_area(text) == pytest.approx(m2)


def test_whole_plot_price_needs_area() -> None:
    price = parse_price("Rp 1,5 M")
    assert price.per_m2(500) == pytest.approx(3_000_000)
    with pytest.raises(NotationError, match="needs the plot's area"):
        price.per_m2(None)


@given(st.integers(min_value=1, max_value=10**13))
def test_dotted_whole_rupiah_round_trip(amount: int) -> None:
    assert format_idr(amount) == "Rp " + f"{amount:,}".replace(",", ".")
    assert parse_price(format_idr(amount)).idr == amount


_MAGNITUDES = {"rb": 1e3, "ribu": 1e3, "jt": 1e6, "juta": 1e6, "M": 1e9, "miliar": 1e9, "milyar": 1e9}


@given(
    whole=st.integers(min_value=1, max_value=999),
    decimals=st.integers(min_value=0, max_value=99),
    word=st.sampled_from(sorted(_MAGNITUDES)),
    space=st.sampled_from(["", " "]),
)
def test_decimal_comma_with_magnitude(whole: int, decimals: int, word: str, space: str) -> None:
    text = f"Rp{space}{whole},{decimals:02d} {word}"
    assert parse_price(text).idr == pytest.approx((whole + decimals / 100) * _MAGNITUDES[word])


@given(
    amount=st.integers(min_value=1, max_value=10**11),
    unit=st.sampled_from(
        [("/m²", 1.0), (" per m2", 1.0), (" per are", 100.0), ("/ha", 1e4), (" per hektar", 1e4)]
    ),
)
def test_per_area_prices_convert_to_per_m2(amount: int, unit: tuple[str, float]) -> None:
    suffix, m2 = unit
    assert parse_price(format_idr(amount) + suffix).per_m2() == pytest.approx(amount / m2)


@given(st.floats(min_value=0.001, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_schema_org_plain_numbers(value: float) -> None:
    text = f"{value:.2f}"
    assert parse_number(text) == pytest.approx(round(value, 2))
