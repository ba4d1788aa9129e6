import sys

from pan.cli.main import main

sys.exit(main())
