"""Synthetic soundscapes drawn exactly as the DCASE 2021 generator drew them.

The 2021 recipe (``generate_dcase_task4_2021.py``) drew each soundscape through a sequence of
scaper calls whose random draws interleave two generators: scaper's own ``RandomState``
(seeded with the seed for each split) and NumPy's global one (seeded once, when the script was
imported, and shared by the train then the validation split). This module makes the same scaper
calls in the same order (:func:`draw_split`), with an explicit ``RandomState`` standing for the
global one, so that the same soundbank, meta infos, seed and scaper version give the same JAMS
events, quirks included:

- a ``_nOn`` / ``_nOn_nOff`` file's source time is ``np.random.uniform(x)``, i.e. ``U(x, 1)``
  (``x = max(file duration - 10 s, 0)``), not ``U(0, x)``;
- ``_nOff`` files are recognised from the label (folder name), which in the 2021 soundbank never
  carries the suffix, so they are placed like complete sounds;
- time stretch ``U(1, 1)`` (a draw that always gives 1), pitch shift ``U(-3, 3)``.

Drawing is sequential and cheap; rendering (:func:`render_split`) takes the drawn JAMS and mixes
them with scaper's own ``_generate_audio`` (what ``Scaper.generate`` does after drawing: no
clipping fix, reverb 0.1, 32-bit PCM wav), in worker processes if asked, which cannot change any
draw. Each clip is written as ``<i>.wav``, ``<i>.txt`` then ``<i>.jams`` through temporary names;
a JAMS on disk marks a complete clip, so a re-run renders only what is missing.
"""

from __future__ import annotations

import copy
import csv
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import jams
import numpy as np
import pandas as pd
import scipy.stats
import soundfile as sf

from desed_task.data_generation.scaper.annotations import events_from_jams
from desed_task.data_generation.scaper.compat import import_scaper
from desed_task.data_generation.scaper.rendering import ClipJob, DrawMismatch, render_resumable
from desed_task.errors import UserError

logger = logging.getLogger(__name__)

DURATION_S = 10.0
REF_DB = -50
REVERB = 0.1
EVENT_PARAMETERS = {  # the 2021 template of sc.add_event (label set per draw)
    "label": ("choose", []),
    "source_file": ("choose", []),
    "source_time": ("const", 0.0),
    "event_time": ("truncnorm", 5.0, 2.0, 0.25, 10.0),  # mean, std, min (= min duration), max
    "event_duration": ("const", 0.1),
    "snr": ("uniform", 6, 30),
    "pitch_shift": ("uniform", -3.0, 3.0),
    "time_stretch": ("uniform", 1, 1),
}


class Draw2021Error(UserError):
    """A draw the 2021 generator could not have completed (it would hang or crash)."""


@dataclass(frozen=True)
class EventModel2021:
    """The 2021 event statistics restricted to the classes present in a soundbank.

    Attributes:
        first_classes: ``target_nb.tsv`` rows (``event_class, mean, std, min, max``) of the
            target classes with a foreground folder; the first event's class is chosen among them.
        cooccurrence: ``event_cooc.tsv`` restricted to those classes (rows indexed by ``label``).
    """

    first_classes: pd.DataFrame
    cooccurrence: pd.DataFrame

    @classmethod
    def from_tables(
        cls, target_nb: pd.DataFrame, event_cooc: pd.DataFrame, fg_labels: Sequence[str]
    ) -> EventModel2021:
        """Round both tables to 6 decimals and keep the classes of ``fg_labels`` (2021 order)."""
        target_nb, event_cooc = target_nb.round(6), event_cooc.round(6)
        present = set(fg_labels)
        classes = [c for c in event_cooc.columns if c in present]  # Index.intersection order
        cooc = event_cooc[event_cooc["label"].isin(classes)].set_index("label")[classes]
        first = target_nb[target_nb["event_class"].isin(classes)].reset_index(drop=True)
        if first.empty:
            raise Draw2021Error("no class of target_nb.tsv has a foreground folder")
        return cls(first, cooc)


def _number_of_events(stats: pd.Series, random_state: np.random.RandomState) -> int:
    """The 2021 truncated normal draw of a clip's number of events."""
    mean, std = stats["mean"], float(stats["std"])
    a, b = (stats["min"] - mean) / std, (stats["max"] - mean) / std
    sample = scipy.stats.truncnorm.rvs(a, b, mean, std, random_state=random_state)
    return int(np.around(np.array(sample).item()))


def _checked_event(sc, template: dict, global_rng: np.random.RandomState) -> dict:
    """Draw the pending event once and pin its label, file and (per variant) timing (2021)."""
    params = copy.deepcopy(template)
    event = sc._instantiate_event(sc.fg_spec[0])
    params["label"] = ("const", event.label)
    params["source_file"] = ("const", event.source_file)
    file_duration = sf.info(event.source_file).duration
    params["event_duration"] = ("const", file_duration)
    # 2021 looked for the suffix in the whole path; the part below fg_path is what can carry it
    name = os.path.relpath(event.source_file, sc.fg_path)
    if "_nOn" in name:  # "_nOn" and "_nOn_nOff"
        source_time = global_rng.uniform(np.maximum(file_duration - sc.duration, 0))
        duration = sc.duration
        if "_nOn_nOff" not in name:
            duration = np.minimum(sc.duration, file_duration - source_time)
            if duration <= 0:
                raise Draw2021Error(
                    f"{event.source_file}: a _nOn file shorter than its drawn source time "
                    f"({source_time:.3f} s): the 2021 generator loops forever here; remove "
                    "files under 1 s or use --fix_2021_quirks"
                )
        params["source_time"] = ("const", source_time)
        params["event_time"] = ("const", 0)
        params["event_duration"] = ("const", duration)
    elif "_nOf" in event.label:  # never true with the 2021 soundbank's class folders
        min_duration = params["event_time"][3]
        event_time = global_rng.uniform(
            max(0, sc.duration - file_duration, sc.duration - min_duration)
        )
        params["event_time"] = ("const", event_time)
        params["event_duration"] = ("const", sc.duration - event_time)
    return params


def _add_background(sc) -> None:
    """Choose a background by a full instantiation, then add it with a uniform start (2021)."""
    sc.add_background(label=("choose", []), source_file=("choose", []), source_time=("const", 0))
    background = sc._instantiate().annotations[0].data[0].value
    file_duration = sf.info(background["source_file"]).duration
    sc.reset_bg_event_spec()
    sc.add_background(
        label=("const", background["label"]),
        source_file=("const", background["source_file"]),
        source_time=("uniform", 0, file_duration - sc.duration),
    )


def _specify_soundscape(
    sc, model: EventModel2021, template: dict, global_rng: np.random.RandomState
) -> None:
    """Fill ``sc``'s specification for one soundscape as 2021 ``instantiate_soundscape`` did."""
    sc.reset_bg_event_spec()
    sc.reset_fg_event_spec()
    template["label"] = ("choose", model.first_classes["event_class"].tolist())
    sc.add_event(**template)
    events = [_checked_event(sc, template, global_rng)]
    first_class = events[0]["label"][1]
    stats = model.first_classes.loc[model.first_classes["event_class"] == first_class].iloc[0]
    n_events = _number_of_events(stats, sc.random_state)
    column = model.cooccurrence[first_class]  # 2021 read the first class's column
    template["label"] = (
        "choose_weighted",
        column.index.tolist(),
        (column / column.sum()).tolist(),
    )
    for _ in range(1, n_events):
        sc.reset_fg_event_spec()
        sc.add_event(**template)
        events.append(_checked_event(sc, template, global_rng))
    sc.reset_fg_event_spec()
    for params in events:
        sc.add_event(**params)
    _add_background(sc)


def draw_split(
    n_soundscapes: int,
    fg_dir: Path,
    bg_dir: Path,
    target_nb: pd.DataFrame,
    event_cooc: pd.DataFrame,
    seed: int,
    global_rng: np.random.RandomState,
) -> Iterator[jams.JAMS]:
    """Yield the JAMS of soundscapes ``0 .. n_soundscapes - 1`` of one split, drawn as in 2021.

    Args:
        n_soundscapes: clips of the split.
        fg_dir: foreground folder (``fg_tgt_ntgt``: one folder per class).
        bg_dir: background folder (one folder per background label).
        target_nb: ``target_nb.tsv`` (event_class, mean, std, min, max).
        event_cooc: ``event_cooc.tsv`` (label + one column per class).
        seed: scaper's seed for this split (2021: the same seed for both splits).
        global_rng: stands for NumPy's global generator, seeded once (``RandomState(seed)``) and
            passed on from the train to the validation split, as in 2021.

    Each JAMS is what ``Scaper.generate`` instantiated (sandbox paths not yet set), 10 s long.
    """
    scaper = import_scaper()
    sc = scaper.Scaper(DURATION_S, str(fg_dir), str(bg_dir), random_state=seed)
    sc.protected_labels = []
    sc.ref_db = REF_DB
    model = EventModel2021.from_tables(target_nb, event_cooc, os.listdir(fg_dir))
    template = dict(EVENT_PARAMETERS)
    for _ in range(n_soundscapes):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scaper warns on every duration adjustment
            _specify_soundscape(sc, model, template, global_rng)
            yield sc._instantiate(
                allow_repeated_label=True, allow_repeated_source=True, reverb=REVERB
            )


def event_records(jam: jams.JAMS) -> list[tuple]:
    """The drawn values of every event of a scaper JAMS, in annotation order.

    ``(role, label, source file relative to the JAMS's fg_path or bg_path, source_time,
    event_time, event_duration, snr, pitch_shift, time_stretch)``; numbers as stored.
    """
    annotation = jam.annotations.search(namespace="scaper")[0]
    sandbox = annotation.sandbox.scaper
    records = []
    for obs in annotation.data:
        v = obs.value
        root = sandbox["fg_path"] if v["role"] == "foreground" else sandbox["bg_path"]
        source = Path(os.path.relpath(v["source_file"], root)).as_posix()
        records.append(
            (v["role"], v["label"], source, v["source_time"], v["event_time"],
             v["event_duration"], v["snr"], v["pitch_shift"], v["time_stretch"])
        )  # fmt: skip
    return records


def same_events(a: Sequence[tuple], b: Sequence[tuple], atol: float = 1e-6) -> bool:
    """Whether two :func:`event_records` lists match (strings equal, numbers within ``atol``)."""
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b):
        for x, y in zip(ra, rb):
            if isinstance(x, (int, float)) and isinstance(y, (int, float)):
                if abs(float(x) - float(y)) > atol:
                    return False
            elif x != y:
                return False
    return True


def _render(job: tuple[str, str, Path]) -> list[tuple[float, float, str]]:
    """Mix one drawn JAMS as ``Scaper.generate`` does and write wav, txt, JAMS (JAMS last)."""
    jam_json, name, out_dir = job
    jam = jams.JAMS.loads(jam_json)
    annotation = jam.annotations.search(namespace="scaper")[0]
    sandbox = annotation.sandbox.scaper = jams.Sandbox(**annotation.sandbox.scaper)
    scaper = import_scaper()
    sc = scaper.Scaper(DURATION_S, sandbox["fg_path"], sandbox["bg_path"])
    sc.ref_db = sandbox["ref_db"]
    sc.protected_labels = []
    final = {ext: out_dir / f"{name}.{ext}" for ext in ("wav", "txt", "jams")}
    tmp = {ext: out_dir / f".{name}.tmp.{ext}" for ext in ("wav", "txt", "jams")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Soundscape audio is clipping!" (not fixed in 2021)
        _, _, scale_factor, ref_db_change = sc._generate_audio(
            str(tmp["wav"]), annotation, reverb=REVERB, disable_sox_warnings=True
        )
    sandbox.update(  # what Scaper.generate records after mixing
        audio_path=str(final["wav"]), jams_path=str(final["jams"]), txt_path=str(final["txt"]),
        soundscape_audio_path=str(final["wav"]), allow_repeated_label=True,
        allow_repeated_source=True, reverb=REVERB, fix_clipping=False, peak_normalization=False,
        quick_pitch_time=False, save_isolated_events=False, isolated_events_path=None,
        disable_sox_warnings=True, no_audio=False, txt_sep="\t",
        disable_instantiation_warnings=False, peak_normalization_scale_factor=scale_factor,
        ref_db_change=ref_db_change, ref_db_generated=sc.ref_db + ref_db_change,
    )  # fmt: skip
    with open(tmp["txt"], "w", newline="") as txt:
        csv.writer(txt, delimiter="\t").writerows(
            [obs.time, obs.time + obs.duration, obs.value["label"]]
            for obs in annotation.data
            if obs.value["role"] == "foreground"
        )
    jam.save(str(tmp["jams"]))
    for ext in ("wav", "txt", "jams"):
        os.replace(tmp[ext], final[ext])
    return events_from_jams(jam)


def _reuse(clip: ClipJob) -> list[tuple[float, float, str]]:
    if not same_events(event_records(jams.load(str(clip.files[0]))), event_records(clip.draw)):
        raise DrawMismatch(
            f"{clip.files[0]} differs from this run's draw (other seed, soundbank, --n_train or "
            f"--fix_2021_quirks): delete {clip.files[0].parent} or choose another --out_dir"
        )
    return events_from_jams(clip.draw)


def render_split(
    drawn: Iterator[jams.JAMS],
    n_soundscapes: int,
    out_dir: Path,
    jobs: int = 1,
    keep_classes: Sequence[str] | None = None,
    description: str = "soundscapes",
) -> dict[str, list[tuple[float, float, str]]]:
    """Render the drawn soundscapes ``0..n-1`` into ``out_dir``, skipping complete ones.

    Draws are consumed in order in this process (:func:`render_resumable`), so they do not depend
    on ``jobs``. A clip whose JAMS is on disk is not rendered again; its events must equal the new
    draw, otherwise :class:`DrawMismatch` is raised (the folder holds another generation).

    Returns:
        ``{"<i>.wav": [(onset_s, offset_s, class), ...]}`` cleaned as DESED annotations,
        restricted to ``keep_classes`` (None: all).
    """
    out_dir = Path(out_dir)
    files = [(out_dir / f"{index}.jams",) for index in range(n_soundscapes)]
    clips = (
        ClipJob(str(index), files[index], (jam.dumps(), str(index), out_dir), draw=jam)
        for index, jam in enumerate(drawn)
    )
    return render_resumable(
        clips, files, [out_dir], _render, _reuse, DURATION_S,
        jobs=jobs, keep_classes=keep_classes, description=description,
    )  # fmt: skip
