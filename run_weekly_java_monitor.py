#!/usr/bin/env python3
"""Entry point kept for schedulers and the container: the same as ``ccapi-monitor run``."""

import sys

from ccapi_monitor.cli import main

if __name__ == "__main__":
    main(["run", *sys.argv[1:]])
