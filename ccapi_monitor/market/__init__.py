"""Market data per region: land price, its trend, and how sure we are (docs/market.md).

Sources share one interface (:class:`ccapi_monitor.market.base.MarketSource`):
``static`` (the tier table), ``feed`` (an operator's price feed) and ``listings``
(schema.org structured data on listing pages). This package file stays import-light so
that ``ccapi_monitor.models`` can import :mod:`ccapi_monitor.market.models` cheaply.
"""
