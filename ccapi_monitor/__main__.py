"""``python -m ccapi_monitor`` is ``ccapi-monitor``."""

from ccapi_monitor.cli import main

if __name__ == "__main__":
    main()
