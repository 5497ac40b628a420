"""Resample and separate the sets of a config: the work of ``run_separation.py``, also done by
``finetune_on_separated.py`` for the sets it reads whose ``_sep`` folder lacks clips (in its own
process, on its ``--gpus`` device, before the SED model trains or tests).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from desed_task.data.resample import check_config_resampler
from desed_task.separation.backend import (
    check_separation_keys,
    open_config_separator,
    separation_settings,
)
from desed_task.separation.demo import ensure_standin_separator
from desed_task.separation.folder import Separator, list_clips, output_path, separate_folder
from desed_task.separation.jobs import SeparationJob, prepare_16k, separation_jobs
from desed_task.separation.report import SeparationReport

log = logging.getLogger(__name__)


@dataclass
class SetsRun:
    """What `separate_sets` did.

    Attributes:
        reports: set name -> its separation counts (sets left alone are absent).
        resample_failures: clips that could not be resampled to 16 kHz.
    """

    reports: dict[str, SeparationReport] = field(default_factory=dict)
    resample_failures: int = 0

    @property
    def failed(self) -> int:
        """Clips that failed (resampling or separation)."""
        return self.resample_failures + sum(len(r.failed) for r in self.reports.values())


def outputs_missing(job: SeparationJob) -> bool:
    """Whether some clip of the job's 16 kHz folder has no output of that name (names only:
    cheap; `separate_folder` checks the outputs' headers when it runs)."""
    if not job.audio_16k.is_dir():
        return True
    return any(not output_path(job.audio_16k, job.separated, clip).is_file() for clip in list_clips(job.audio_16k))


def separate_sets(
    config: dict,
    source: str = "config",
    *,
    names: tuple[str, ...] | None = None,
    test_only: bool = False,
    only_missing: bool = False,
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    separator: Separator | None = None,
    progress: bool = True,
) -> SetsRun:
    """Resample (``<set>_folder_44k`` -> ``_16k``) and separate (-> ``_sep``) a config's sets.

    Args:
        config: the checked config (``data``, ``training`` separation keys, ``separation``,
            ``demo`` with ``separation_standin``: the stand-in is written first when absent).
        source: the config file, for messages.
        names: only these sets (None: those of `separation_jobs`).
        test_only: dev-test only (run_separation.py --test_only).
        only_missing: leave alone the sets whose outputs all exist by name, and load no model
            when none is left (what fine-tuning does before reading the sets).
        device: the PyTorch backend's device.
        batch_size: clips per forward pass (None: ``separation.batch_size`` or the default).
        separator: a loaded model (tests); None: the config's (`open_config_separator`).
        progress: tqdm bars.

    Raises:
        ConfigError, ModelNotFound, TensorFlowMissing: as `separation_jobs` and
            `open_separator`.
    """
    def check_keys() -> None:  # before any work: a config without a model is refused first
        if separator is None:
            check_separation_keys(config.get("training") or {}, separation_settings(config, source)[0], source)

    check_config_resampler(config, source)
    separation_settings(config, source)  # a wrong backend is refused before any work
    if not only_missing:
        check_keys()
    data = config["data"]
    fs = int(data.get("fs", 16000))
    jobs = separation_jobs(data, test_only=test_only, names=names)
    run = SetsRun()
    for job in jobs:
        resampled = prepare_16k(job, fs, data.get("resampler"))
        run.resample_failures += len(resampled.failed) if resampled else 0
    if only_missing:
        jobs = [job for job in jobs if outputs_missing(job)]
        if not jobs:
            return run
        check_keys()
        log.info("separating the clips missing from %s", ", ".join(str(job.separated) for job in jobs))
    owned = separator is None
    if owned:
        ensure_standin_separator(config, source)
        separator = open_config_separator(config, device, batch_size, source=source)
    try:
        for job in jobs:
            run.reports[job.name] = separate_folder(
                separator, job.audio_16k, job.separated, expected_sample_rate=fs, progress=progress,
                batch_size=batch_size,
            )
    finally:
        if owned and hasattr(separator, "close"):
            separator.close()
    return run

