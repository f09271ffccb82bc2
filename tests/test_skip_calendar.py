"""The skip calendar: operator dates and windows, Indonesian public holidays, and bad input."""

from __future__ import annotations

import json
from datetime import date

import holidays
import pytest

from ccapi_monitor.errors import ExitCode, InvalidInputError
from ccapi_monitor.skip_calendar import SkipCalendar, skip_decision

# What Terraform renders into CCAPI_SKIP_CALENDAR (jsonencode of local.skip_calendar).
TERRAFORM_JSON = json.dumps(
    {
        "public_holidays_country": "ID",
        "dates": {"2026-12-28": "year-end freeze"},
        "windows": [{"start": "2027-01-04", "end": "2027-01-10", "reason": "Earth Engine maintenance"}],
    }
)


@pytest.fixture
def calendar() -> SkipCalendar:
    return SkipCalendar.from_json(TERRAFORM_JSON)


def test_indonesian_public_holiday_is_skipped_with_its_name(calendar: SkipCalendar) -> None:
    # Independence Day, 17 August, is fixed by law; 2026-08-17 is a Monday (a scheduled run).
    decision = skip_decision(calendar, date(2026, 8, 17))
    assert decision is not None
    assert decision.source == "public_holiday"
    assert decision.reason == "public holiday in ID: Independence Day"
    assert decision.callback() == {
        "status": "skipped",
        "exit_code": 0,
        "run_date": "2026-08-17",
        "skip": {"reason": "public holiday in ID: Independence Day", "source": "public_holiday"},
    }


def test_every_holiday_the_library_lists_is_skipped(calendar: SkipCalendar) -> None:
    listed = holidays.country_holidays("ID", years=2027)
    assert len(listed) >= 10
    for day in listed:
        decision = skip_decision(calendar, day)
        assert decision is not None, day
        assert decision.source in {"public_holiday", "window"}, day


def test_operator_date_and_window_bounds(calendar: SkipCalendar) -> None:
    freeze = skip_decision(calendar, date(2026, 12, 28))
    assert freeze is not None
    assert (freeze.reason, freeze.source) == ("year-end freeze", "date")
    for inside in (date(2027, 1, 4), date(2027, 1, 7), date(2027, 1, 10)):
        decision = skip_decision(calendar, inside)
        assert decision is not None, inside
        assert decision.reason == "Earth Engine maintenance", inside
    assert skip_decision(calendar, date(2027, 1, 11)) is None
    assert skip_decision(calendar, date(2027, 1, 3)) is None


def test_ordinary_monday_runs(calendar: SkipCalendar) -> None:
    assert skip_decision(calendar, date(2026, 11, 23)) is None


def test_unset_calendar_skips_nothing() -> None:
    for text in (None, "", "  "):
        assert skip_decision(SkipCalendar.from_json(text), date(2026, 8, 17)) is None


def test_holidays_can_be_turned_off() -> None:
    calendar = SkipCalendar.from_json(json.dumps({"public_holidays_country": ""}))
    assert skip_decision(calendar, date(2026, 8, 17)) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "CCAPI_SKIP_CALENDAR is not valid JSON"),
        ('{"public_holidays_country": "XX"}', "public_holidays_country"),
        ('{"dates": {"2026-13-01": "typo"}}', "dates"),
        ('{"dates": {"2026-12-28": " "}}', "dates without a reason: 2026-12-28"),
        (
            '{"windows": [{"start": "2027-01-10", "end": "2027-01-04", "reason": "typo"}]}',
            "ends (2027-01-04)",
        ),
        ('{"holidays": "ID"}', "holidays"),
    ],
)
def test_bad_calendar_is_one_line_and_exit_3(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        SkipCalendar.from_json(text)
    assert raised.value.exit_code == ExitCode.INVALID_INPUT
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
