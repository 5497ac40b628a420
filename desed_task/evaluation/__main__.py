"""Entry point of ``python -m desed_task.evaluation``."""

import sys

from desed_task.evaluation.cli import main

sys.exit(main())
