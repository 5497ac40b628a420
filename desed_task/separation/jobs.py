"""Which folders of a config `run_separation.py` resamples and separates.

For each set of `desed_task.sets` with a ``separation_rank`` (in 2021's order: synthetic train,
synthetic validation, weak, unlabelled, dev-test; then the evaluation set, when its audio is on
disk) the config's ``data`` section names up to three folders:

    <set>_folder_44k  original clips (optional; when set, resampled into the 16 kHz folder)
    <set>_folder_16k  16 kHz clips, the separation input (`load_config` folds it into
                      <set>_folder, which is read as well)
    <set>_folder_sep  the separated output, one channel per source
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from desed_task.config import ConfigError
from desed_task.data.resample import ResampleReport, resample_folder, write_durations
from desed_task.sets import SETS_BY_NAME, separated_sets, sets_read_in

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class SeparationJob:
    """The folders of one set.

    Attributes:
        name: set name, e.g. "synth_val".
        audio_44k: original clips to resample first, or None when already at 16 kHz.
        audio_16k: separation input (16 kHz).
        separated: separation output folder.
        durations_tsv: where to write `filename<TAB>duration` of the 16 kHz clips, or None.
    """

    name: str
    audio_44k: Path | None
    audio_16k: Path
    separated: Path
    durations_tsv: Path | None = None


def _folder(data: dict, key: str) -> Path | None:
    value = data.get(key)
    return Path(value) if value else None


def separation_jobs(
    data: dict, *, test_only: bool = False, names: tuple[str, ...] | None = None
) -> list[SeparationJob]:
    """Read the folders of each set from a config's ``data`` section (only the sets `names`
    when given, e.g. those a fine-tuning mode reads).

    Raises:
        ConfigError: naming the missing ``data.<key>`` of a set (its 16 kHz or _sep folder, or
            neither a 16 kHz folder nor a 44 kHz one to make it from).
    """
    jobs = []
    if not names:
        names = tuple(spec.name for spec in (sets_read_in("test") if test_only else separated_sets()))
    for name in names:
        audio_44k = _folder(data, f"{name}_folder_44k")
        audio_16k = _folder(data, f"{name}_folder_16k") or _folder(data, f"{name}_folder")
        separated = _folder(data, f"{name}_folder_sep")
        # an optional set (the evaluation set) only when its _sep folder is set and its audio is on disk
        if SETS_BY_NAME[name].optional and not _optional_set_ready(name, audio_44k, audio_16k, separated):
            continue
        if audio_16k is None:
            raise ConfigError(f"data.{name}_folder_16k: the 16 kHz folder of '{name}' is not set")
        if separated is None:
            raise ConfigError(
                f"data.{name}_folder_sep: the separated folder of '{name}' is not set"
            )
        if audio_44k is None and not audio_16k.is_dir():
            raise ConfigError(
                f"data.{name}_folder_44k: {audio_16k} does not exist and there is no 44 kHz "
                f"folder to resample it from"
            )
        # the 2021 script rewrote the durations tsv of a set after resampling it
        duration_key = SETS_BY_NAME[name].durations_key
        durations = _folder(data, duration_key) if duration_key else None
        jobs.append(SeparationJob(name, audio_44k, audio_16k, separated, durations))
    return jobs


def _optional_set_ready(
    name: str, audio_44k: Path | None, audio_16k: Path | None, separated: Path | None
) -> bool:
    """Whether an optional set is asked for (its _sep folder set) and has audio to separate."""
    if separated is None:
        return False
    if any(folder is not None and folder.is_dir() for folder in (audio_44k, audio_16k)):
        return True
    log.warning("data.%s_folder_sep is set but %s has no audio folder on disk: skipped", name, name)
    return False


def prepare_16k(
    job: SeparationJob, sample_rate: int = 16000, resampler: str | None = None
) -> ResampleReport | None:
    """Resample the job's 44 kHz folder into its 16 kHz one when one is set (resumable; done
    files are skipped; ``resampler`` as ``data.resampler``, None: kaiser_best) and write its
    durations tsv when missing or when clips were added.

    Returns the resampling report, or None when the set has no 44 kHz folder.
    """
    report = None
    if job.audio_44k is not None:
        report = resample_folder(job.audio_44k, job.audio_16k, target_fs=sample_rate, resampler=resampler)
    if job.durations_tsv is not None and (
        not job.durations_tsv.is_file() or (report is not None and report.resampled > 0)
    ):
        write_durations(job.audio_16k, job.durations_tsv)
        log.info("wrote clip durations of %s to %s", job.audio_16k, job.durations_tsv)
    return report
