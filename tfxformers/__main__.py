"""``python -m tfxformers`` is the same as the ``tfxformers`` command."""
import sys

from tfxformers.cli import main

sys.exit(main())
