"""``python -m tickstep ...``: the same command line as ``tickstep ...`` (`tickstep.cli`)."""

from __future__ import annotations

import sys


def main() -> int:
    from tickstep.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
