"""Command line: ``python -m stableanimator_core <command> ...`` (see ``--help``)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
