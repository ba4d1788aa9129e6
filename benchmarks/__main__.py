"""`python -m benchmarks`: the same as `pan bench`."""

import sys

from benchmarks.cli import main

sys.exit(main())
