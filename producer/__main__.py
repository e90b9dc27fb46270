"""``python -m producer``: see :mod:`producer.cli`."""

import sys

from producer.cli import main

sys.exit(main())
