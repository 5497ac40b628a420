"""``python -m desed_task.data_generation.demo --root data/demo``: build the demo dataset."""

import sys

from desed_task.data_generation.demo.dataset import main

if __name__ == "__main__":
    sys.exit(main())
