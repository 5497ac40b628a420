"""``python -m desed_task.separation convert``: see desed_task/separation/cli.py."""

import sys

from desed_task.separation.cli import main

if __name__ == "__main__":
    sys.exit(main())
