"""ccapi-monitor: weekly land clearing and construction monitor for Java."""

__version__ = "0.1.0"
