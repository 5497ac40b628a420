"""Entry point of ``python -m desed_task.postprocessing``."""

import sys

from desed_task.postprocessing.cli import main

sys.exit(main())
