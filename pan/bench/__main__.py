"""`python -m pan.bench`: the same as `pan bench`."""

import sys

from pan.bench.cli import main

sys.exit(main())
