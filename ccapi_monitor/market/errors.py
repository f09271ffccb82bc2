"""Market errors: a bad feed is the operator's input (exit 3); a failed fetch is enrichment."""

from __future__ import annotations

from ccapi_monitor.errors import CCAPIError, InvalidInputError


class MarketError(CCAPIError):
    """A market source could not be read this run; the region falls back to the static table."""


class FeedFormatError(InvalidInputError):
    """The feed is readable but not a feed (no required column, unknown format): exit 3."""


class RobotsDisallowedError(MarketError):
    """robots.txt of the host forbids our User-Agent to fetch the URL."""
