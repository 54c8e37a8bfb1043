import sys

from regsweep.cli import main

sys.exit(main())
