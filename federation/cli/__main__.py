"""``python -m hashfed.federation.cli``: the ``hashfed`` command."""

import sys

from hashfed.federation.cli import main

sys.exit(main())
