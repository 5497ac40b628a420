"""The LightningDataModule of the 2021 recipe: which clips train, validate and test, and how."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import pandas as pd
from torch.utils.data import ConcatDataset, DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from desed_task.data.audio import audio_info
from desed_task.data.datasets import (
    ClipSet,
    StronglyLabeledSet,
    UnlabeledSet,
    WeaklyLabeledSet,
)
from desed_task.data.embeddings_reader import EmbeddingsReader, set_file
from desed_task.data.embeddings_store import EmbeddingsError
from desed_task.data.resample import resample_folder, write_durations
from desed_task.data.sampler import MixedBatchSampler
from desed_task.data.tables import (
    MetadataError,
    drop_events_past_end,
    read_durations,
    read_strong_table,
    read_weak_table,
    shortest_audio_seconds,
)
from desed_task.errors import UserError
from desed_task.nnet import network_needs
from desed_task.sets import SETS_BY_NAME, sets_read_in
from desed_task.threads import available_cores, one_thread_worker

log = logging.getLogger(__name__)

EXTRACT_COMMAND = "python -m desed_task.embeddings --beats BEATs_iter3_plus_AS2M.pt --conf_file CONF.yaml"


class DataMissingError(UserError):
    """The config points at data that is not on disk; the message says how to get it."""


def _how_to_get_data(missing: list[str]) -> str:
    listing = "\n".join(f"  - {m}" for m in missing)
    return (
        "The DESED data this config points at is not on disk:\n"
        f"{listing}\n"
        "Get it with `python generate_dcase_task4_2021.py --basedir ../../data` (see "
        "docs/data.md), or point the config's `data:` paths at your copy.\n"
        "To try the whole pipeline without DESED, run the built-in demo instead:\n"
        "  python train_sed.py --conf_file confs/demo.yaml"
    )


class DESEDDataModule(L.LightningDataModule):
    """Datasets and loaders of the 2021 baseline, built from the config's `data` and `training`.

    Args:
        config: the checked YAML config.
        encoder: the `ManyHotEncoder` giving frame targets.
        mode: "fit" (train + validation + test), "test" (dev-test only) or "eval" (the
            unlabelled evaluation folder, predictions only).
        separated_sources: also read the `*_folder_sep` sources of each clip (SSEP + SED).

    For a network fed embeddings (`desed_task.nnet.network_needs`; the 2023 CRNN,
    ``net.use_embeddings``) every item also holds the clip's embeddings,
    read from ``pretrained.extracted_embeddings_dir`` by clip name (`desed_task.data.embeddings_reader`).
    With ``training.strong_real`` the strongly labelled real clips of ``data.strong_folder`` are
    trained with the synthetic ones (their part of each batch draws from both), as 2023's
    ``--strong_real``.
    """

    def __init__(
        self, config: dict, encoder, mode: str = "fit", separated_sources: bool = False
    ) -> None:
        super().__init__()
        if mode not in ("fit", "test", "eval"):
            raise ValueError(f"unknown mode {mode!r}")
        self.config = config
        self.data = config["data"]
        self.training = config["training"]
        self.encoder = encoder
        self.mode = mode
        self.separated_sources = separated_sources
        self.class_names = list(encoder.labels)
        # the parts of the mixed batch (desed_task.sets.BATCH_PARTS): [strong part (synthetic, + real
        # with strong_real), weak, unlabelled]
        self.train_sets: list[Dataset] = []
        self.val_set: Dataset | None = None
        self.test_set: ClipSet | None = None
        self.synth_val_events: pd.DataFrame | None = None
        self.synth_val_durations: pd.DataFrame | None = None
        self.test_events: pd.DataFrame | None = None
        self.test_durations: pd.DataFrame | None = None
        # data.drop_clips_without_events: the dev-test clips left out, with their durations
        self.test_dropped_durations: pd.DataFrame | None = None
        self._prepared = False
        self.uses_embeddings = network_needs(config).embeddings

    def _set_names(self) -> tuple[str, ...]:
        """The sets with folders that this mode reads (`desed_task.sets`; ``strong`` with
        ``training.strong_real``)."""
        return tuple(spec.name for spec in sets_read_in(self.mode, self.training))

    def _embedding_sets(self) -> tuple[str, ...]:
        """The sets whose embeddings this mode reads (the held-out weak clips have a file of
        their own, see `desed_task.sets`)."""
        names = self._set_names()
        if self.mode == "fit" and float(self.training["weak_split"]) < 1:
            names = (*names, "weak_val")
        return names

    def _folder(self, name: str) -> Path | None:
        folder = self.data.get(f"{name}_folder")
        return Path(folder) if folder else None

    def check_sources(self) -> None:
        """Raise `DataMissingError` listing what is absent (audio folders or their `_44k` twin,
        metadata tables), before any training starts."""
        missing = []
        for name in self._set_names():
            folder, folder_44k = self._folder(name), self.data.get(f"{name}_folder_44k")
            if folder is None:
                missing.append(f"data.{name}_folder is not set")
            elif not folder.is_dir() and not (folder_44k and Path(folder_44k).is_dir()):
                missing.append(f"{folder} (data.{name}_folder)")
            if self.separated_sources:
                sep = self.data.get(f"{name}_folder_sep")
                if not sep or not Path(sep).is_dir():
                    missing.append(f"{sep} (data.{name}_folder_sep; run run_separation.py)")
            key = SETS_BY_NAME[name].tsv_key
            if key in self.data and not Path(self.data[key] or "").is_file():
                missing.append(f"{self.data[key]} (data.{key})")
        if missing:
            raise DataMissingError(_how_to_get_data(missing))
        if self.uses_embeddings:
            absent = [set_file(self.config, name) for name in self._embedding_sets()]
            absent = [str(path) for path in absent if not path.is_file()]
            if absent:
                raise EmbeddingsError(
                    f"net.use_embeddings is true but these embeddings files are missing: {', '.join(absent)}; "
                    f"extract them with: {EXTRACT_COMMAND}"
                )

    def prepare_data(self) -> None:
        """Resample 44.1 kHz folders to 16 kHz once and write missing durations files
        (Lightning runs this on one process per node; a second call does nothing)."""
        if self._prepared:
            return
        self._prepared = True
        fs = int(self.data["fs"])
        for name in self._set_names():
            folder, folder_44k = self._folder(name), self.data.get(f"{name}_folder_44k")
            if folder is not None and folder_44k and Path(folder_44k).is_dir():
                report = resample_folder(folder_44k, folder, fs, resampler=self.data.get("resampler"))
                if report.failed:
                    log.warning("%d file(s) of %s could not be resampled", len(report.failed), folder_44k)
        for name in self._set_names():
            key = SETS_BY_NAME[name].durations_key
            path, folder = self.data.get(key) if key else None, self._folder(name)
            if path and not Path(path).is_file() and folder and folder.is_dir():
                log.info("writing durations of %s to %s", folder, path)
                write_durations(folder, path)

    def _embeddings(self, set_name: str) -> EmbeddingsReader | None:
        """The reader of a set's embeddings file (None without ``net.use_embeddings``), checked
        against the network (channels) and the clip length."""
        if not self.uses_embeddings:
            return None
        net = self.config["net"]
        reader = EmbeddingsReader(set_file(self.config, set_name), net.get("embedding_type", "frame"), EXTRACT_COMMAND)
        if reader.dim != int(net.get("embedding_size", 768)):
            raise EmbeddingsError(
                f"{reader.path}: embeddings of {reader.dim} channels, the network takes "
                f"net.embedding_size {net.get('embedding_size', 768)}; set net.embedding_size: {reader.dim}, "
                "or extract the embeddings with the BEATs the network is meant for"
            )
        if reader.clip_seconds != float(self.data["audio_max_len"]):
            raise EmbeddingsError(
                f"{reader.path}: embeddings of {reader.clip_seconds:g} s clips, but data.audio_max_len is "
                f"{self.data['audio_max_len']}: the embeddings must describe the clips the network reads"
            )
        return reader

    def _clip_kwargs(self, name: str, embeddings_set: str | None = None) -> dict:
        sources = self.data.get(f"{name}_folder_sep") if self.separated_sources else None
        return {
            "sample_rate": int(self.data["fs"]),
            # 2021 read the evaluation set unpadded (pad_to=None) and scored each clip whole
            "clip_seconds": None if name == "eval" else float(self.data["audio_max_len"]),
            "sources_folder": sources,
            # the ensemble's 2021 input is the sum of the sources' mels: no mixture to read
            "read_mixture": self.training.get("ensemble_mixture_input") == "mixture",
            "check_audio": bool(self.data.get("check_audio", True)),
            "embeddings": self._embeddings(embeddings_set or name),
        }

    def _strong(self, name: str) -> tuple[StronglyLabeledSet, pd.DataFrame, pd.DataFrame | None]:
        """The set, its events and its durations (None without a durations file), restricted
        to the clips that are used; events past their clip's end are dropped with a warning.
        With a durations file, the set's clips are also those listed there without any event
        (the evaluated clips are the durations table's, as in psds_eval), unless
        ``data.drop_clips_without_events`` (2023) leaves every clip without events out."""
        path = self.data[f"{name}_tsv"]
        events = read_strong_table(path, self.class_names)
        durations_key = SETS_BY_NAME[name].durations_key
        durations = read_durations(self.data[durations_key]) if durations_key else None
        events = drop_events_past_end(events, path, name, float(self.data["audio_max_len"]), durations)
        if self.data.get("drop_clips_without_events"):
            events = self._drop_clips_without_events(name, events, durations)
            clips_without_rows = []
        else:
            in_events = set(events["filename"])
            clips_without_rows = [] if durations is None else [f for f in durations["filename"] if f not in in_events]
        dataset = StronglyLabeledSet(
            name, self._folder(name), events, self.encoder, extra_clips=clips_without_rows,
            shortest_seconds=shortest_audio_seconds(events, durations), **self._clip_kwargs(name),
        )
        if durations is not None:  # clips on disk that the metrics could not evaluate: say so now
            listed = set(durations["filename"])
            unlisted = [f for f in dataset.filenames if f not in listed]
            if unlisted:
                raise MetadataError(
                    f"{path}: {len(unlisted)} clip(s) missing from {self.data[durations_key]} "
                    f"(first: {unlisted[0]}); add their durations"
                )
        kept = set(dataset.filenames)
        events = events[events["filename"].isin(kept)].reset_index(drop=True)
        if durations is not None:
            durations = durations[durations["filename"].isin(kept)].reset_index(drop=True)
        return dataset, events, durations

    def _drop_clips_without_events(
        self, name: str, events: pd.DataFrame, durations: pd.DataFrame | None
    ) -> pd.DataFrame:
        """``data.drop_clips_without_events`` (2023): the set's events without its empty-label
        rows (2023's ``dropna``), so that a clip without any event is not in the set; for the
        dev-test set, the durations of the clips left out are kept in ``test_dropped_durations``
        (2023's psds_eval still counted them, see ``evaluation.testing.score_test_set``)."""
        labelled = events[events["event_label"].notna()].reset_index(drop=True)
        labelled.attrs.update(events.attrs)
        with_events = set(labelled["filename"])
        listed = list(dict.fromkeys([*events["filename"], *([] if durations is None else durations["filename"])]))
        dropped = [f for f in listed if f not in with_events]
        if dropped:
            log.info(
                "%s: %d clip(s) without any event left out (data.drop_clips_without_events, as 2023; first: %s)",
                name, len(dropped), dropped[0],
            )
        if name == "test" and durations is not None:
            self.test_dropped_durations = durations[durations["filename"].isin(dropped)].reset_index(drop=True)
        return labelled

    def setup(self, stage: str | None = None) -> None:
        if self.train_sets or self.test_set is not None:
            return
        built: list[ClipSet] = []
        if self.mode == "eval":
            self.test_set = UnlabeledSet("eval", self._folder("eval"), self.encoder, **self._clip_kwargs("eval"))
            built.append(self.test_set)
            if self.test_set.embeddings is not None:
                self._check_embedded_lengths(self.test_set)
        else:
            self.test_set, self.test_events, self.test_durations = self._strong("test")
            built.append(self.test_set)
        if self.mode == "fit":
            synth, _, _ = self._strong("synth")
            strong_part: Dataset = synth
            if self.training.get("strong_real"):
                strong_real, _, _ = self._strong("strong")
                strong_part = ConcatDataset([strong_real, synth])  # 2023's order
                built.append(strong_real)
            weak_all = read_weak_table(self.data["weak_tsv"], self.class_names)
            seed = int(self.training["seed"])
            # the 2021 split: pandas' seeded sample, so the same clips are held out
            weak_train = weak_all.sample(frac=float(self.training["weak_split"]), random_state=seed)
            weak_val = weak_all.drop(weak_train.index).reset_index(drop=True)
            weak_train = weak_train.reset_index(drop=True)
            weak = WeaklyLabeledSet("weak", self._folder("weak"), weak_train, self.encoder, **self._clip_kwargs("weak"))
            unlabeled = UnlabeledSet(
                "unlabeled", self._folder("unlabeled"), self.encoder,
                sort=bool(self.data.get("sort_unlabeled", True)), **self._clip_kwargs("unlabeled"),
            )
            self.train_sets = [strong_part, weak, unlabeled]
            synth_val, self.synth_val_events, self.synth_val_durations = self._strong("synth_val")
            val_sets: list[ClipSet] = [synth_val]
            if len(weak_val):
                val_sets.append(
                    WeaklyLabeledSet(
                        "weak_val", self._folder("weak"), weak_val, self.encoder, **self._clip_kwargs("weak", "weak_val")
                    )
                )
            self.val_set = ConcatDataset(val_sets)
            built += [synth, weak, unlabeled, *val_sets]
        self._log_skipped(built)

    @staticmethod
    def _check_embedded_lengths(dataset: ClipSet) -> None:
        """Evaluation clips are scored at their own length, but their embeddings describe
        (padded or cropped) clips of ``clip_seconds``: a longer clip is refused."""
        limit = dataset.embeddings.clip_seconds
        for name in dataset.filenames:
            seconds = audio_info(dataset.folder / name).duration
            if seconds > limit + 1e-6:
                raise EmbeddingsError(
                    f"{dataset.folder / name}: {seconds:g} s, longer than the {limit:g} s that its embeddings in "
                    f"{dataset.embeddings.path} describe; score recordings of any length with "
                    "python -m desed_task.inference --checkpoint CKPT --beats BEATS.pt"
                )

    @staticmethod
    def _log_skipped(sets: list[ClipSet]) -> None:
        """One summary line of the clips skipped, one of the clips mixed down to mono."""
        counts = [
            f"{s.name}: {len(s.missing)} missing, {len(s.unreadable)} unreadable, "
            f"{len(s.truncated)} truncated (of {len(s.missing) + len(s.unreadable) + len(s.truncated) + len(s)})"
            for s in sets
            if s.missing or s.unreadable or s.truncated
        ]
        if counts:
            log.warning("clips skipped - %s", "; ".join(counts))
        for s in sets:
            if s.truncated:
                name, why = next(iter(s.truncated.items()))
                log.warning(
                    "%s: %d clip(s) shorter than their labels or durations entry are skipped "
                    "(first: %s: %s); re-download or regenerate them",
                    s.name, len(s.truncated), s.folder / name, why,
                )
        mixed = [f"{s.name} {s.mixed_down}" for s in sets if s.mixed_down]
        if mixed:
            log.info(
                "%d multi-channel clip(s) mixed down to mono (channels averaged, as 2021): %s",
                sum(s.mixed_down for s in sets), ", ".join(mixed),
            )

    # loaders
    def _workers(self) -> int:
        return min(int(self.training.get("num_workers", 0) or 0), available_cores())

    def _loader(self, dataset: Dataset, **kwargs) -> DataLoader:
        """A DataLoader with the config's workers (one thread each). Its workers start anew at
        every epoch, as in 2021: each new iterator draws its workers' base seed from the global
        torch generator, so keeping them (``training.persistent_workers: true``) is faster to
        start but shifts every later draw, the batches of the next epochs included."""
        workers = self._workers()
        return DataLoader(
            dataset,
            num_workers=workers,
            persistent_workers=workers > 0 and bool(self.training.get("persistent_workers", False)),
            worker_init_fn=one_thread_worker if workers > 0 else None,
            **kwargs,
        )

    def _eval_loader(self, dataset: Dataset, batch_size: int | None = None) -> DataLoader:
        sampler = None
        if self.trainer is not None and self.trainer.world_size > 1:
            # duplicates padded in by the sampler are dropped when scores are gathered by name
            sampler = DistributedSampler(dataset, shuffle=False, drop_last=False)
        return self._loader(
            dataset, batch_size=batch_size or int(self.training["batch_size_val"]), sampler=sampler, shuffle=False
        )

    def train_dataloader(self) -> DataLoader:
        world, rank = 1, 0
        if self.trainer is not None:
            world, rank = self.trainer.world_size, self.trainer.global_rank
        sampler = MixedBatchSampler(
            [len(s) for s in self.train_sets], self.training["batch_size"], num_replicas=world, rank=rank
        )
        return self._loader(ConcatDataset(self.train_sets), batch_sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        # evaluation clips have their own lengths: one per batch, as in 2021
        return self._eval_loader(self.test_set, 1 if self.mode == "eval" else None)
