from __future__ import annotations

import sys

from flux_batch.cli import main

sys.exit(main())
