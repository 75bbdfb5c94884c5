"""`python -m chserver` (run in tools/chserver): the same as running chserver.py."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m chserver"))
