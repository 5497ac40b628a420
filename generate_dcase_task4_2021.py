"""Put DESED for DCASE 2021 task 4 on disk: real clips, 2021 soundbank, synthetic soundscapes.

    python generate_dcase_task4_2021.py --basedir ../../data

Every step is resumable (re-run the same command after an interruption). A path given for an
input dataset (--desed_soundbank, --fsd50k, --fuss, --desed_real, --meta_infos) means "already
on disk, do not download"; so does a complete 2021 soundbank at --out_soundbank. The soundbank
is assembled, and soundscapes are drawn, exactly as the 2021 generator did (--fix_2021_quirks:
the project's corrected soundbank and draws). YouTube clips that cannot be fetched are listed
per set in <desed_real>/missing_files/; they never stop the run. See "The DCASE 2021 data" in docs/data.md.
"""

import sys

from desed_task.data_generation.dcase2021.cli import main

if __name__ == "__main__":
    sys.exit(main(__doc__))
