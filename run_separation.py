"""Separate the DESED folders with the pre-trained separation model (2021 SSEP + SED, step 1).

    python run_separation.py --conf_file confs/sep+sed.yaml         # real DESED
    python run_separation.py --conf_file confs/demo_sep+sed.yaml    # the demo, no download
    python run_separation.py --test_only --gpus 0 --batch_size 4    # dev-test only, on the CPU
Options and exit statuses: desed_task/separation/cli.py; see README.md.
"""

import sys

from desed_task.separation.cli import separate_main as main

if __name__ == "__main__":
    sys.exit(main())
