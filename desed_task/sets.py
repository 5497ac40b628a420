"""The sets of the recipes, in one table: what each set is, where the config keeps it, and which
tools use it (the config's keys, the data module, separation, the embeddings, the demo builder).

A set named ``<name>`` with folders of its own has the config keys ``data.<name>_folder``
(16 kHz clips; ``_folder_16k`` is its alias), ``data.<name>_folder_44k`` (the originals,
resampled into ``_folder`` when set) and ``data.<name>_folder_sep`` (the separated sources);
with ``tsv`` also ``data.<name>_tsv`` (a strong or weak table, after its label type), with
``durations`` also ``data.<name>_dur`` (``filename<TAB>duration`` of its clips).

The rows are in the order the data module reads the sets (the config order of 2021, with the
2023 recipe's real strong clips before the dev-test), which is also the demo builder's order.
Two tools keep the order of the script they reproduce: ``separation_rank`` (2021's
``run_separation.py``) and ``embeddings_rank`` (2023's extraction), both checked in
``tests/test_sets.py`` to cover the sets exactly once.

To add a set: add its row (its config keys follow); the data module builds its dataset in
``DESEDDataModule.setup`` by its label type, the demo renders it when it has a ``demo_name``
(with a field of ``DemoSizes`` and a path of ``DemoLayout`` of that name).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class LabelType(IntEnum):
    """What the clips of a set are labelled with; every batch item carries its set's value
    (``label_type``), so a batch is split by what a clip is, not by where it comes from."""

    STRONG = 0  # events with onsets and offsets (frame targets)
    WEAK = 1  # the classes present in the clip (clip targets)
    UNLABELED = 2  # nothing: the consistency loss only, or predictions only (eval)


MODES = ("fit", "test", "eval")
"""What a run of the data module does: train (with validation and the dev-test), test the
dev-test, or predict the unlabelled evaluation set."""

FOLDER_SUFFIXES = ("_folder", "_folder_16k", "_folder_44k", "_folder_sep")
"""The ``data.<set><suffix>`` keys of a set with folders of its own (see the module docstring)."""


@dataclass(frozen=True)
class SetSpec:
    """One row of the table of sets.

    Attributes:
        name: the set's name in the config keys (``data.<name>_folder``), in messages and in
            the data module.
        label: what its clips are labelled with.
        tsv: whether it has a ``data.<name>_tsv`` table (strong or weak, after ``label``).
        durations: whether it has a ``data.<name>_dur`` durations table (the scored sets).
        modes: the data module's modes that read it (``MODES``).
        batch_part: for a training set, which part of the mixed batch it fills (index into
            ``training.batch_size``); None for the others.
        switch: the ``training`` key that brings the set in (read only when true); None: always.
        folder_of: a set without folders of its own reads those of this set (weak_val: the weak
            clips held out by ``training.weak_split``); None: its own ``data.<name>_folder``.
        optional: separated and embedded only when its audio is on disk (2021 did not
            separate the evaluation set; a fine-tuned model's ``--eval_from_checkpoint`` needs it).
        embeddings_file: the stem of its embeddings file (the 2023 recipe's names).
        embeddings_rank: its place in the 2023 extraction order.
        separation_rank: its place in 2021's ``run_separation.py`` order; None: not separated.
        demo_name: the demo dataset's folder and table stem of the set; None: the demo has none.
    """

    name: str
    label: LabelType
    tsv: bool
    durations: bool
    modes: tuple[str, ...]
    batch_part: int | None
    switch: str | None
    folder_of: str | None
    optional: bool
    embeddings_file: str
    embeddings_rank: int
    separation_rank: int | None
    demo_name: str | None

    @property
    def tsv_key(self) -> str | None:
        """``<name>_tsv`` of the ``data`` section, or None without a table."""
        return f"{self.name}_tsv" if self.tsv else None

    @property
    def durations_key(self) -> str | None:
        """``<name>_dur`` of the ``data`` section, or None without a durations table."""
        return f"{self.name}_dur" if self.durations else None

    @property
    def folder_set(self) -> str:
        """The set whose ``data.<set>_folder`` keys hold this set's clips."""
        return self.folder_of or self.name


_S, _W, _U = LabelType.STRONG, LabelType.WEAK, LabelType.UNLABELED
# fmt: off
SETS: tuple[SetSpec, ...] = tuple(SetSpec(*row) for row in (
    # name       label tsv    dur    modes                batch switch                folder_of optional embeddings file  emb sep   demo_name
    ("synth",     _S, True,  False, ("fit",),            0,    None,                 None,   False, "synth_train",     0,  0,    "synthetic_train"),
    ("weak",      _W, True,  False, ("fit",),            1,    None,                 None,   False, "weak_train",      1,  2,    "weak"),
    ("unlabeled", _U, False, False, ("fit",),            2,    None,                 None,   False, "unlabeled_train", 3,  3,    "unlabel_in_domain"),
    ("synth_val", _S, True,  True,  ("fit",),            None, None,                 None,   False, "synth_val",       4,  1,    "synthetic_validation"),
    # the 2023 recipe's strongly labelled real clips (AudioSet strong), trained with the synthetic ones
    ("strong",    _S, True,  False, ("fit",),            0,    "strong_real",        None,   False, "strong_train",    2,  None, None),
    ("test",      _S, True,  True,  ("fit", "test"),     None, None,                 None,   False, "devtest",         6,  4,    "validation"),
    ("eval",      _U, False, False, ("eval",),           None, None,                 None,   True,  "eval",            7,  5,    "eval"),
    ("weak_val",  _W, False, False, ("fit",),            None, None,                 "weak", False, "weak_val",        5,  None, None),
))
# fmt: on
SETS_BY_NAME: dict[str, SetSpec] = {spec.name: spec for spec in SETS}

FOLDER_SETS: tuple[SetSpec, ...] = tuple(spec for spec in SETS if spec.folder_of is None)
"""The sets with ``data.<name>_folder`` keys of their own, in the table's order."""

BATCH_PARTS: tuple[str, ...] = tuple(
    next(spec.name for spec in SETS if spec.batch_part == part and spec.switch is None)
    for part in sorted({spec.batch_part for spec in SETS if spec.batch_part is not None})
)
"""The parts of the mixed training batch, in ``training.batch_size``'s order, named by the set
that always fills each: ("synth", "weak", "unlabeled")."""


def sets_read_in(mode: str, switches: dict | None = None) -> tuple[SetSpec, ...]:
    """The sets with folders of their own that a data module ``mode`` reads, in the table's
    order; ``switches`` (the ``training`` section) brings in the sets behind a switch."""
    switches = switches or {}
    return tuple(
        spec for spec in FOLDER_SETS
        if mode in spec.modes and (spec.switch is None or switches.get(spec.switch))
    )


def separated_sets() -> tuple[SetSpec, ...]:
    """The sets ``run_separation.py`` separates (the optional ones last), in 2021's order."""
    return tuple(sorted((spec for spec in SETS if spec.separation_rank is not None),
                        key=lambda spec: spec.separation_rank))


def embedded_sets() -> tuple[SetSpec, ...]:
    """Every set with its embeddings file, in the 2023 extraction order."""
    return tuple(sorted(SETS, key=lambda spec: spec.embeddings_rank))


def demo_sets() -> tuple[SetSpec, ...]:
    """The sets the demo dataset has, in the order it builds them."""
    return tuple(spec for spec in SETS if spec.demo_name is not None)
