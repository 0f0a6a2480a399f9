"""``python -m capillary_points_async.cli``: the ``capillary-points`` command."""

import sys

from . import main

sys.exit(main())
