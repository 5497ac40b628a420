"""Sound separation before SED fine-tuning (the 2021 SSEP + SED baseline, step 1).

The 2021 baseline separates every clip with Google's pre-trained universal sound separation
model (TDCN++ trained with MixIT on YFCC100M, a TensorFlow 1 meta graph and checkpoint from
gs://gresearch/sound_separation/yfcc100m_mixit_model_checkpoint) and writes one multi-channel
wav per clip, one channel per separated source.

TensorFlow is an optional extra (``pip install .[separation]``). Only `model` and `standin`
import it, and only when a model is loaded or built; `folder`, `jobs` and `report` are plain
Python so that the SED code never pulls TensorFlow in.

Modules:
    model: `TFSeparationModel`, loads the meta graph + checkpoint and separates one waveform.
    standin: `build_standin_model`, a small STAND-IN graph with the real model's tensor names.
    folder: `separate_folder`, resumable separation of a folder tree.
    jobs: which folders of a config to separate (`separation_jobs`).
    report: `SeparationReport`, what a folder run did, and the final table.
"""

from desed_task.separation.folder import Separator, separate_folder
from desed_task.separation.report import SeparationReport, format_reports

__all__ = ["SeparationReport", "Separator", "format_reports", "separate_folder"]
