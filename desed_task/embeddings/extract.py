"""BEATs embeddings of every clip of a folder, or of every set of a config, as the 2023 recipe
stored them (see :mod:`desed_task.data.embeddings_store` for the file layout).

Clips are read as the project's training reads them (:func:`desed_task.data.audio.read_audio`:
16 kHz, channels averaged, zero-padded or cropped to 10 s). 2023 cropped a longer clip at a
random position; here it is cropped at its start, as our training reader crops it, so that a
file is reproducible and its embeddings describe the audio the CRNN is trained on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from desed_task.data.audio import AudioError, list_wav_clips, read_audio
from desed_task.data.embeddings_reader import embeddings_dir
from desed_task.data.embeddings_store import (
    DONE,
    UNREADABLE,
    EmbeddingsError,
    RowWriter,
    StoreIdentity,
    create_store,
    finish_store,
    partial_path,
    read_store,
)
from desed_task.data.resample import resample_folder
from desed_task.nnet.beats import SAMPLE_RATE, BEATs
from desed_task.sets import embedded_sets
from desed_task.threads import one_thread_worker

log = logging.getLogger(__name__)

CLIP_SECONDS = 10.0  # 2023 padded or cropped every clip to 10 s
UNREADABLE_LISTED = 10  # names in the warning; the rest are counted


@dataclasses.dataclass
class ExtractionReport:
    """What one folder's extraction did."""

    out: Path
    clips: int
    extracted: int = 0  # computed by this run
    already_done: int = 0  # found in the file (a resumed or finished extraction)
    copied_from: Path | None = None
    unreadable: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (file, reason)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 16 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


class _Clips(Dataset):
    """(row, audio (samples,) or None, reason) for the pending rows of a file."""

    def __init__(self, folder: Path, names: list[str], rows: list[int], n_samples: int):
        self.folder, self.names, self.rows, self.n_samples = folder, names, rows, n_samples

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str]:
        row = self.rows[i]
        try:
            audio, _ = read_audio(self.folder / self.names[row], sample_rate=SAMPLE_RATE, target_len=self.n_samples)
        except AudioError as err:
            return row, None, str(err)
        return row, audio, ""


def _as_lists(batch: list[tuple[int, torch.Tensor | None, str]]) -> list[tuple[int, torch.Tensor | None, str]]:
    return batch


def _check_existing(out: Path, stems: list[str], identity: StoreIdentity) -> tuple:
    """(path, state) of ``out`` or else of its ``.part``, (None, None) without either; raises
    EmbeddingsError when the file belongs to another extraction (other clips, weights, length)."""
    for path in (out, partial_path(out)):
        if not path.exists():
            continue
        try:
            state = read_store(path)
        except EmbeddingsError:
            if path == out:
                raise
            log.warning("%s: unreadable leftover of an earlier run; starting again", path)
            path.unlink()
            continue
        if path == out:  # unreadable clips have a blank name; the 2023 script wrote glob order
            same = len(state.names) == len(stems) and {n for n in state.names if n} <= set(stems)
        else:
            same = state.names == stems
        if not same:
            raise EmbeddingsError(
                f"{path}: holds other clips than the folder now has ({len(state.names)} vs "
                f"{len(stems)}); delete it to extract again"
            )
        if state.identity is not None and state.identity != identity:
            raise EmbeddingsError(
                f"{path}: extracted with another BEATs checkpoint or clip length; delete it to "
                "extract again"
            )
        return path, state
    return None, None


def extract_folder(
    model: BEATs,
    folder: str | Path,
    out: str | Path,
    *,
    checkpoint_sha256: str,
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    num_workers: int = 0,
    clip_seconds: float = CLIP_SECONDS,
    progress: bool = True,
) -> ExtractionReport:
    """Embeddings of every ``.wav`` clip of ``folder`` into ``out`` (HDF5, 2023 layout).

    Resumes an interrupted extraction (``out.part``) without recomputing its finished rows;
    does nothing when ``out`` is complete. Unreadable clips are counted and named in one warning;
    their rows stay empty with a blank name.

    Args:
        model: BEATs in eval mode, on ``device``.
        checkpoint_sha256: identifies the weights (a resumed file must match it).

    Raises:
        EmbeddingsError: no clip in the folder, an output file of another extraction, or no
            clip readable at all.
    """
    folder, out = Path(folder), Path(out)
    names = list_wav_clips(folder)
    if not names:
        where = "does not exist" if not folder.is_dir() else "has no .wav clip"
        raise EmbeddingsError(f"{folder}: {where}; give the folder of the 16 kHz clips")
    stems = [Path(n).stem for n in names]
    n_samples = round(clip_seconds * SAMPLE_RATE)
    identity = StoreIdentity(checkpoint_sha256, float(clip_seconds), model.embedding_dim, model.n_tokens(n_samples))
    report = ExtractionReport(out=out, clips=len(names))

    path, state = _check_existing(out, stems, identity)
    if path == out:
        report.already_done = int((state.flags == DONE).sum())
        log.info("%s: complete (%d clips), nothing to do", out, report.already_done)
        return report
    part = partial_path(out)
    if state is None:
        create_store(part, stems, identity, folder)
        state = read_store(part)
    pending = [row for row, flag in enumerate(state.flags) if flag != DONE]
    report.already_done = len(names) - len(pending)
    if report.already_done:
        log.info("%s: resuming, %d of %d clips already extracted", part, report.already_done, len(names))

    loader = DataLoader(
        _Clips(folder, names, pending, n_samples), batch_size=batch_size, num_workers=num_workers,
        collate_fn=_as_lists, worker_init_fn=one_thread_worker if num_workers else None,
    )
    bar = tqdm(total=len(pending), desc=f"BEATs {out.name}", unit="clip", disable=not progress)
    with RowWriter(state) as writer, torch.inference_mode():
        for batch in loader:
            failed = [(row, reason) for row, audio, reason in batch if audio is None]
            good = [(row, audio) for row, audio, _ in batch if audio is not None]
            if good:
                audio = torch.stack([a for _, a in good]).to(device, non_blocking=True)
                emb = model.embeddings(audio)
                writer.write([row for row, _ in good], emb["global"].cpu().numpy(), emb["frame"].cpu().numpy())
                report.extracted += len(good)
            if failed:
                writer.flag([row for row, _ in failed], UNREADABLE)
                report.unreadable += [(names[row], reason) for row, reason in failed]
            bar.update(len(batch))
    bar.close()

    _warn_unreadable(folder, report)
    if report.unreadable and len(report.unreadable) == len(names):
        raise EmbeddingsError(f"{folder}: no clip could be read (first: {report.unreadable[0][1]})")
    finish_store(state, out)
    log.info("%s: %d clips extracted, %d already done, %d unreadable", out,
             report.extracted, report.already_done, len(report.unreadable))
    return report


def _warn_unreadable(folder: Path, report: ExtractionReport) -> None:
    if not report.unreadable:
        return
    listed = "; ".join(f"{name} ({reason})" for name, reason in report.unreadable[:UNREADABLE_LISTED])
    more = len(report.unreadable) - UNREADABLE_LISTED
    log.warning(
        "%s: %d of %d clips could not be read and have no embeddings: %s%s", folder,
        len(report.unreadable), report.clips, listed, f"; and {more} more" if more > 0 else "",
    )


# ---------------------------------------------------------------------------- config sets
@dataclasses.dataclass(frozen=True)
class EmbeddingSet:
    name: str  # the 2023 file stem, e.g. synth_train
    folder: Path
    out: Path


def config_sets(config: dict, source: str) -> list[EmbeddingSet]:
    """The sets of a config with a folder, in the 2023 order (`desed_task.sets.embedded_sets`:
    the 2023 recipe's files and the config folders they come from; weak_val is the whole weak
    folder again, as 2023 extracted it, here copied from weak_train instead of computed twice;
    strong_train only with ``training.strong_real``; eval only when ``data.eval_folder`` is set
    and on disk); raises EmbeddingsError listing the folders that are set but absent (with no
    ``_44k`` twin to resample)."""
    data, out_dir = config["data"], embeddings_dir(config, source)
    if int(data["fs"]) != SAMPLE_RATE:
        raise EmbeddingsError(f"{source}: BEATs reads 16 kHz clips; 'data.fs' is {data['fs']}")
    sets, missing = [], []
    for spec in embedded_sets():
        name, key = spec.embeddings_file, spec.folder_set
        if spec.switch is not None and not (config.get("training") or {}).get(spec.switch):
            continue
        folder = data.get(f"{key}_folder")
        if not folder:
            log.info("%s: data.%s_folder is not set, no %s.hdf5", source, key, name)
            continue
        twin = data.get(f"{key}_folder_44k")
        if not Path(folder).is_dir() and not (twin and Path(twin).is_dir()):
            if spec.optional:
                log.info("%s: %s (data.%s_folder) is not on disk, no %s.hdf5", source, folder, key, name)
                continue
            missing.append(f"{folder} (data.{key}_folder)")
            continue
        sets.append(EmbeddingSet(name, Path(folder), out_dir / f"{name}.hdf5"))
    if missing:
        raise EmbeddingsError(f"{source}: audio folders not on disk: {', '.join(missing)}")
    return sets


def prepare_folders(config: dict, sets: Iterable[EmbeddingSet]) -> None:
    """Resample the sets' ``_44k`` twins into their 16 kHz folders, as training does first
    (with the config's ``data.resampler``: the embeddings describe the clips training reads)."""
    data = config["data"]
    for spec in embedded_sets():
        name, key = spec.embeddings_file, spec.folder_set
        twin = data.get(f"{key}_folder_44k")
        folder = data.get(f"{key}_folder")
        if any(s.name == name for s in sets) and twin and Path(twin).is_dir():
            report = resample_folder(twin, folder, SAMPLE_RATE, resampler=data.get("resampler"))
            if report.failed:
                log.warning("%d file(s) of %s could not be resampled", len(report.failed), twin)


def extract_config(model: BEATs, config: dict, source: str, **kwargs) -> list[ExtractionReport]:
    """Every set of the config (see `config_sets`); a folder shared by two sets is
    extracted once and its file copied."""
    sets = config_sets(config, source)
    prepare_folders(config, sets)
    done: dict[Path, Path] = {}
    reports = []
    for item in sets:
        first = done.get(item.folder.resolve())
        if first is not None and not item.out.exists():
            copy = item.out.with_name(item.out.name + ".copy")
            shutil.copyfile(first, copy)
            copy.replace(item.out)
            state = read_store(item.out)
            reports.append(ExtractionReport(item.out, len(state.names), already_done=int((state.flags == DONE).sum()),
                                            copied_from=first))
            log.info("%s: copied from %s (same folder)", item.out, first)
            continue
        reports.append(extract_folder(model, item.folder, item.out, **kwargs))
        done.setdefault(item.folder.resolve(), item.out)
    return reports
