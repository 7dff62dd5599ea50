"""``python -m stableanimator_core.parity replay|compare ...`` (see :mod:`.replay`)."""

import sys

from .replay import main

if __name__ == "__main__":
    sys.exit(main())
