"""``python -m tfxformers.serving.proxy``: the proxy alone (what its container runs)."""
import sys

from tfxformers.serving.proxy.cli import main

sys.exit(main())
