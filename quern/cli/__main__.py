"""``python -m quern.cli``: the same as the ``quern`` console script."""

from __future__ import annotations

import sys

from quern.cli import main

sys.exit(main())
