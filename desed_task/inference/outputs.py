"""Files written by the inference CLI: events.tsv (DCASE layout), durations.tsv (each scored
file's length, the evaluation's ``--durations``) and the names that keep every input's outputs apart (score tables: ``desed_task.decoding.score_files.write_score_table``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from desed_task.inference.reading import list_audio_files

log = logging.getLogger(__name__)
EVENT_COLUMNS = ("filename", "onset", "offset", "event_label")


def input_names(paths: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """Every audio file under the command's PATH arguments, with the name its outputs take.

    The name is the file's path relative to the argument it came from, extension included
    (``rec.wav`` for a file given by name, ``sub/rec.flac`` under a folder): it is the
    ``filename`` of events.tsv, and ``scores/<name>.tsv``, ``plots/<name>.png`` are written, so
    ``x.wav``, ``x.mp3`` and ``x.ogg`` keep apart. Where arguments give the same name (``a/rec.wav
    b/rec.wav``), each of those is prefixed by its argument's number, 1 for the first PATH:
    ``1/rec.wav``, ``2/rec.wav``. A file reached twice is scored once.

    Returns:
        (file, name) pairs in the arguments' order, names unique (also without regard to case).

    Raises:
        NoAudioFilesError: a path does not exist, or a folder holds no audio file.
    """
    found: list[tuple[Path, str, int]] = []
    seen: set[Path] = set()
    for number, given in enumerate(paths, start=1):
        for path, relative in list_audio_files([given]):
            if path.resolve() not in seen:
                seen.add(path.resolve())
                found.append((path, relative.as_posix(), number))
    arguments_of: dict[str, set[int]] = {}
    for _, name, number in found:
        arguments_of.setdefault(name.casefold(), set()).add(number)
    shared = {key for key, numbers in arguments_of.items() if len(numbers) > 1}
    names = [f"{number}/{name}" if name.casefold() in shared else name for _, name, number in found]
    if len({name.casefold() for name in names}) < len(names):  # a prefixed name met a real one
        names = [f"{number}/{name}" for _, name, number in found]
    if shared:
        log.info(
            "%d file name(s) given by several PATH arguments (e.g. %s): their outputs and "
            "events.tsv rows are named N/<name>, N the argument's number",
            len(shared), next(name for _, name, _ in found if name.casefold() in shared),
        )
    return [(path, name) for (path, _, _), name in zip(found, names)]


class EventsFile:
    """``events.tsv`` written as files are scored (a crash keeps what was done)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\t".join(EVENT_COLUMNS) + "\n")
        self.count = 0

    def append(self, events: pd.DataFrame) -> None:
        """Add one file's events (columns filename, onset, offset, event_label; seconds)."""
        if len(events):
            events[list(EVENT_COLUMNS)].to_csv(self.path, sep="\t", index=False, header=False, mode="a", float_format="%.3f")
        self.count += len(events)


class DurationsFile:
    """``durations.tsv`` beside events.tsv: ``filename duration`` (seconds) of every scored file,
    written as files are scored, the layout of the evaluation's ``--durations``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("filename\tduration\n")

    def append(self, name: str, seconds: float) -> None:
        """Add one file: its output name (events.tsv's ``filename``) and its length in seconds."""
        with self.path.open("a") as handle:
            handle.write(f"{name}\t{seconds:.6f}\n")
