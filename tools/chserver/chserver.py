#!/usr/bin/env python3
"""chserver: a ClickHouse HTTP interface in front of chDB, the embedded ClickHouse engine.

The launcher that start.sh, the integration tests (tests/it/support/clickhouse.rs)
and scripts run: `python chserver.py --path DIR --port 0 --port-file FILE ...`
(`--help` lists the options). The code is the `chserver` package next to this
file; its docstring (chserver/__init__.py) says what the front speaks and how
it differs from a real clickhouse-server.
"""

import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
if here not in sys.path:
    sys.path.insert(0, here)

from chserver.cli import main  # noqa: E402  (after the path is set)

if __name__ == "__main__":
    sys.exit(main())
