import sys

from vmenergy.cli import main

sys.exit(main())
