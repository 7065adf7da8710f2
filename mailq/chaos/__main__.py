import sys

from mailq.chaos.cli import main

sys.exit(main())
