"""The skip calendar: weeks the scheduled run does not run (public holidays, maintenance).

ValidateInputs (``ccapi-monitor preflight`` in the state machine) asks :func:`skip_decision`
before any other check. A skipped week ends the execution as a success with a "skipped"
notification and starts no RunWeeklyMonitoring task; execution input ``{"force": true}``
runs anyway. Terraform's ``skip_calendar`` variable arrives as JSON in ``CCAPI_SKIP_CALENDAR``
(docs/deployment.md, "Holidays and maintenance windows"). Without that variable nothing is
skipped, so local runs behave as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, Literal

import holidays
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ccapi_monitor.errors import InvalidInputError

SkipSource = Literal["date", "window", "public_holiday"]


class SkipWindow(BaseModel):
    """Inclusive range of dates with the reason people will read in the notification."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: date
    end: date
    reason: str = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> SkipWindow:
        if self.end < self.start:
            raise ValueError(f"window {self.reason!r} ends ({self.end}) before it starts ({self.start})")
        return self


class SkipCalendar(BaseModel):
    """Operator dates and windows plus one country's public holidays (``""``: none)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    public_holidays_country: str = ""
    dates: dict[date, str] = Field(default_factory=dict)
    windows: tuple[SkipWindow, ...] = ()

    @field_validator("public_holidays_country")
    @classmethod
    def _supported_country(cls, value: str) -> str:
        if value and value not in holidays.list_supported_countries():
            raise ValueError(f"{value!r} is not a country the holidays library knows (ISO 3166-1 alpha-2)")
        return value

    @field_validator("dates")
    @classmethod
    def _reasons(cls, value: dict[date, str]) -> dict[date, str]:
        empty = sorted(d.isoformat() for d, reason in value.items() if not reason.strip())
        if empty:
            raise ValueError(f"dates without a reason: {', '.join(empty)}")
        return value

    @classmethod
    def from_json(cls, text: str | None) -> SkipCalendar:
        """Parse ``CCAPI_SKIP_CALENDAR``; unset or blank is the empty calendar. Bad input: exit 3."""
        if text is None or not text.strip():
            return cls()
        try:
            data: Any = json.loads(text)
            return cls.model_validate(data)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                f"CCAPI_SKIP_CALENDAR is not valid JSON: {exc.msg} at column {exc.colno}"
            ) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "calendar"
            raise InvalidInputError(f"CCAPI_SKIP_CALENDAR: invalid {where}: {first['msg']}") from None


@dataclass(frozen=True)
class SkipDecision:
    """Why ``run_date`` is skipped; :meth:`callback` is ValidateInputs' SendTaskSuccess output."""

    run_date: date
    reason: str
    source: SkipSource

    def callback(self) -> dict[str, Any]:
        return {
            "status": "skipped",
            "exit_code": 0,
            "run_date": self.run_date.isoformat(),
            "skip": {"reason": self.reason, "source": self.source},
        }


@lru_cache(maxsize=16)
def _public_holidays(country: str, year: int) -> dict[date, str]:
    return dict(holidays.country_holidays(country, years=year).items())


def skip_decision(calendar: SkipCalendar, run_date: date) -> SkipDecision | None:
    """The first rule that skips ``run_date``: operator dates, then windows, then public holidays."""
    if run_date in calendar.dates:
        return SkipDecision(run_date, calendar.dates[run_date], "date")
    for window in calendar.windows:
        if window.start <= run_date <= window.end:
            return SkipDecision(run_date, window.reason, "window")
    if calendar.public_holidays_country:
        name = _public_holidays(calendar.public_holidays_country, run_date.year).get(run_date)
        if name is not None:
            return SkipDecision(
                run_date, f"public holiday in {calendar.public_holidays_country}: {name}", "public_holiday"
            )
    return None
