"""Sound separation before SED fine-tuning (the 2021 SSEP + SED baseline, step 1).

The 2021 baseline separates every clip with Google's pre-trained universal sound separation
model (TDCN++ trained with MixIT on YFCC100M, a TensorFlow 1 meta graph and checkpoint from
gs://gresearch/sound_separation/yfcc100m_mixit_model_checkpoint) and writes one multi-channel
wav per clip, one channel per separated source.

The same model runs in PyTorch (`desed_task.nnet.tdcnpp.TDCNpp`), its weights converted once
from Google's checkpoint without TensorFlow (``python -m desed_task.separation convert``) into
a file read by `load_separator`.

TensorFlow is an optional extra (``pip install .[separation]``). Only `model` and `standin`
import it, and only when a model is loaded or built; the other modules are plain Python (and
PyTorch) so that the SED code never pulls TensorFlow in.

Modules:
    cli: the command lines: run_separation.py (`separate_main`) and ``python -m
        desed_task.separation convert`` (`main`).
    backend: which model a command runs (``separation.backend``: the converted PyTorch file by
        default, the TensorFlow session as reference), `TorchSeparator` (batches on a device).
    sets: `separate_sets`, resample and separate a config's sets (run_separation.py, fine-tuning).
    demo: the SSEP demo's STAND-IN separation model (a small random PyTorch TDCN++).
    model: `TFSeparationModel`, loads the meta graph + checkpoint and separates one waveform.
    standin: `build_standin_model`, a small STAND-IN graph with the real model's tensor names.
    separator_file: `save_separator` / `load_separator`, the converted PyTorch model's file.
    convert: Google's TensorFlow checkpoint -> `TDCNpp` (``python -m desed_task.separation convert``).
    tf_checkpoint: reads a TensorFlow checkpoint without TensorFlow.
    folder: `separate_folder`, resumable separation of a folder tree.
    jobs: which folders of a config to separate (`separation_jobs`).
    report: `SeparationReport`, what a folder run did, and the final table.
    errors: `ModelNotFound`, a separation model's file or folder that is absent.
"""

from desed_task.separation.folder import Separator, separate_folder
from desed_task.separation.report import SeparationReport, format_reports
from desed_task.separation.separator_file import load_separator, save_separator

__all__ = ["SeparationReport", "Separator", "format_reports", "load_separator", "save_separator",
           "separate_folder"]
