import sys

from spec_core.cli import main

sys.exit(main())
