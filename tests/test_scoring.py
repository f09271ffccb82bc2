"""Investment score: bounds, labels, monotonicity, the documented formula, and land-price files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccapi_monitor.errors import InvalidInputError
from ccapi_monitor.models import InfrastructureResult
from ccapi_monitor.params import CLASSES
from ccapi_monitor.scoring import (
    ACTIVITY_SCALE_HA_PER_KM2,
    BUY_AT,
    WATCH_AT,
    WEIGHT_ACTIVITY,
    WEIGHT_INFRASTRUCTURE,
    LandPrice,
    default_land_prices_path,
    load_land_prices,
    require_tiers,
    score_region,
)

PRICES = load_land_prices()
hectares = st.floats(min_value=0, max_value=5_000, allow_nan=False)
infra_scores = st.floats(min_value=0, max_value=100, allow_nan=False)
areas = st.floats(min_value=1, max_value=5_000, allow_nan=False)
tiers = st.sampled_from(sorted(PRICES))


def infra(score: float | None, status: str = "ok") -> InfrastructureResult:
    return InfrastructureResult(source="pbf", status=status, score=score, confidence="high")


def score(
    clearing: float = 0.0,
    built: float = 0.0,
    *,
    area: float = 480.0,
    infra_score: float | None = 50.0,
    tier: int = 2,
    infrastructure: InfrastructureResult | None = None,
):
    return score_region(
        new_area_ha={"vegetation_clearing": clearing, "built_up": built},
        area_km2=area,
        infrastructure=infrastructure if infrastructure is not None else infra(infra_score),
        tier=tier,
        prices=PRICES,
    )


# --- land prices -------------------------------------------------------------------


def test_packaged_prices_cover_every_tier_with_source_and_fall_with_tier():
    assert sorted(PRICES) == [1, 2, 3, 4]
    usd = [PRICES[t].usd_per_m2 for t in sorted(PRICES)]
    assert usd == sorted(usd, reverse=True)
    for price in PRICES.values():
        assert price.source
        assert price.as_of
        assert price.idr_per_m2 > price.usd_per_m2 > 0
    document = json.loads(default_land_prices_path().read_text())
    for row in document["tiers"]:  # the USD figure is the IDR figure at the stated rate
        assert row["usd_per_m2"] == pytest.approx(row["idr_per_m2"] / document["idr_per_usd"])


def test_csv_override(tmp_path: Path):
    path = tmp_path / "prices.csv"
    path.write_text("tier,idr_per_m2,usd_per_m2,description\n1,8000000,500,metro\n2,800000,50,\n")
    prices = load_land_prices(path)
    assert prices == {
        1: LandPrice(
            tier=1, idr_per_m2=8e6, usd_per_m2=500, description="metro", source="override file prices.csv"
        ),
        2: LandPrice(tier=2, idr_per_m2=8e5, usd_per_m2=50, source="override file prices.csv"),
    }


def test_json_override_list_and_object(tmp_path: Path):
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([{"tier": 3, "idr_per_m2": 1e6, "usd_per_m2": 62.5}]))
    assert list(load_land_prices(listed)) == [3]
    wrapped = tmp_path / "obj.json"
    wrapped.write_text(
        json.dumps(
            {
                "source": "survey",
                "as_of": "2026-01",
                "tiers": [{"tier": 1, "idr_per_m2": 2e6, "usd_per_m2": 125}],
            }
        )
    )
    assert load_land_prices(wrapped)[1].source == "survey"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.json", None, "cannot read"),
        ("bad.json", "{not json", "bad.json"),
        ("empty.json", '{"tiers": []}', "defines no tier"),
        ("neg.json", '[{"tier": 1, "idr_per_m2": -5, "usd_per_m2": 1}]', "greater than 0"),
        ("nan.json", '[{"tier": 1, "idr_per_m2": NaN, "usd_per_m2": 1}]', "finite"),
        (
            "dup.json",
            '[{"tier":1,"idr_per_m2":1,"usd_per_m2":1},{"tier":1,"idr_per_m2":2,"usd_per_m2":2}]',
            "twice",
        ),
        ("tier0.json", '[{"tier": 0, "idr_per_m2": 1, "usd_per_m2": 1}]', "tier"),
        ("extra.json", '[{"tier": 1, "idr_per_m2": 1, "usd_per_m2": 1, "eur": 3}]', "eur"),
        ("shape.json", '{"prices": {}}', "tiers"),
        ("cols.csv", "tier,price\n1,5\n", "usd_per_m2"),
        ("text.csv", "tier,idr_per_m2,usd_per_m2\none,5,1\n", "tier"),
    ],
)
def test_bad_price_file_is_invalid_input(tmp_path: Path, name: str, content: str | None, message: str):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(InvalidInputError, match=message):
        load_land_prices(path)


# --- the score ---------------------------------------------------------------------


def test_documented_formula_for_one_region():
    """24 ha new built-up in 480 km² is 0.05 ha/km²: activity 100 (1 - 1/e); tier 1 has no market term."""
    result = score(built=24.0, area=480.0, infra_score=50.0, tier=1)
    activity = 100 * (1 - math.exp(-(24.0 / 480.0) / ACTIVITY_SCALE_HA_PER_KM2))
    expected = WEIGHT_ACTIVITY * activity + WEIGHT_INFRASTRUCTURE * 50.0
    assert result.value == pytest.approx(round(expected, 1))
    assert result.components["activity"] == pytest.approx(activity, abs=0.01)
    assert result.components["market"] == 0.0
    assert result.infrastructure_used


def test_no_detection_result_is_not_scored():
    result = score_region(new_area_ha=None, area_km2=480, infrastructure=infra(90), tier=4, prices=PRICES)
    assert result.value is None
    assert result.label is None
    assert "Not scored" in result.rationale
    assert "observations" in result.rationale


@pytest.mark.parametrize(
    ("infrastructure", "reason"),
    [
        (None, "no infrastructure result"),
        (InfrastructureResult(source="off", status="off"), "source off"),
        (InfrastructureResult(source="overpass", status="error", error="timeout"), "overpass failed"),
        (InfrastructureResult(source="pbf", status="ok", score=None), "no score"),
    ],
)
def test_score_without_infrastructure_says_so(infrastructure, reason):
    result = score_region(
        new_area_ha={"vegetation_clearing": 5.0, "built_up": 10.0},
        area_km2=480,
        infrastructure=infrastructure,
        tier=3,
        prices=PRICES,
    )
    assert result.value is not None
    assert not result.infrastructure_used
    assert "infrastructure" not in result.components
    assert f"infrastructure not used ({reason})" in result.rationale


def test_stale_infrastructure_is_used_and_named():
    result = score(built=10, infrastructure=infra(70, status="stale"))
    assert result.infrastructure_used
    assert "infrastructure 70/100 from stale cache" in result.rationale


def test_rationale_is_one_sentence_naming_the_figures():
    result = score(clearing=3.25, built=12.5, area=512.0, infra_score=68.0, tier=3)
    text = result.rationale
    assert text.count(". ") == 0
    assert text.endswith(".")
    for figure in (
        "3.2 ha new vegetation clearing",
        "12.5 ha new built-up",
        "512 km²",
        "infrastructure 68/100",
        "tier 3",
        "IDR 1,000,000/m²",
        "USD 62",
        f"{result.value:.0f}/100",
        str(result.label),
    ):
        assert figure in text


def test_labels_follow_thresholds():
    assert score(infra_score=100.0, tier=4).label == "PASS"  # infrastructure alone is not development
    busy = score(built=200.0, clearing=100.0, infra_score=90.0, tier=3)
    assert busy.label == "BUY"
    assert busy.value is not None
    assert busy.value >= BUY_AT
    middling = score(built=15.0, infra_score=60.0, tier=1)
    assert middling.label == "WATCH"
    assert middling.value is not None
    assert WATCH_AT <= middling.value < BUY_AT


def test_cheaper_tier_with_the_same_activity_is_the_better_opportunity():
    by_tier = [score(built=20.0, tier=t).value for t in sorted(PRICES)]
    assert by_tier == sorted(by_tier)
    assert by_tier[0] is not None
    assert by_tier[-1] is not None
    assert by_tier[-1] > by_tier[0]
    # ... but only with activity: with nothing new, the tier makes no difference.
    assert len({score(tier=t).value for t in PRICES}) == 1


def test_require_tiers_names_the_missing_ones():
    require_tiers([1, 2, 4], PRICES)
    with pytest.raises(InvalidInputError, match=r"tier\(s\) 5, 7"):
        require_tiers([1, 7, 5], PRICES)


def test_unknown_tier_and_bad_area_are_rejected():
    with pytest.raises(InvalidInputError, match="tier 9"):
        score(tier=9)
    with pytest.raises(InvalidInputError, match="positive"):
        score(area=0.0)


@settings(max_examples=150, deadline=None)
@given(hectares, hectares, infra_scores, areas, tiers, st.booleans())
def test_score_is_bounded_and_labelled_consistently(clearing, built, infra_score, area, tier, with_infra):
    result = score(
        clearing,
        built,
        area=area,
        tier=tier,
        infrastructure=infra(infra_score) if with_infra else InfrastructureResult(source="off", status="off"),
    )
    assert result.value is not None
    assert 0.0 <= result.value <= 100.0
    expected = "BUY" if result.value >= BUY_AT else "WATCH" if result.value >= WATCH_AT else "PASS"
    assert result.label == expected
    assert result.infrastructure_used is with_infra


@settings(max_examples=150, deadline=None)
@given(hectares, hectares, infra_scores, infra_scores, areas, tiers)
def test_more_infrastructure_never_lowers_the_score(clearing, built, a, b, area, tier):
    low, high = sorted((a, b))
    less = score(clearing, built, area=area, infra_score=low, tier=tier).value
    more = score(clearing, built, area=area, infra_score=high, tier=tier).value
    assert less is not None
    assert more is not None
    assert more >= less


@settings(max_examples=150, deadline=None)
@given(hectares, hectares, hectares, st.sampled_from(CLASSES), infra_scores, areas, tiers, st.booleans())
def test_more_new_development_never_lowers_the_score(
    clearing, built, extra, grown, infra_score, area, tier, with_infra
):
    infrastructure = infra(infra_score) if with_infra else None
    before = score_region(
        new_area_ha={"vegetation_clearing": clearing, "built_up": built},
        area_km2=area,
        infrastructure=infrastructure,
        tier=tier,
        prices=PRICES,
    )
    more = {"vegetation_clearing": clearing, "built_up": built}
    more[grown] += extra
    after = score_region(
        new_area_ha=more, area_km2=area, infrastructure=infrastructure, tier=tier, prices=PRICES
    )
    assert before.value is not None
    assert after.value is not None
    assert after.value >= before.value
