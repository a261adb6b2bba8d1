"""``python -m benchmarks [--quick] [--out DIR] [--only NAME ...]``: see ``docs/benchmarks.md``."""

import sys

from benchmarks.harness import main

if __name__ == "__main__":
    sys.exit(main())
