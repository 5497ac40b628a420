"""One resumable renderer for every soundscape generator (the project's draws and 2021's).

A generator hands over its clips in order, each already drawn (no randomness is left for
rendering), with two functions: ``render`` mixes a clip and writes its files through temporary
names, the JAMS last; ``reuse`` reads a clip whose files are all on disk and raises
:class:`DrawMismatch` when it was drawn otherwise. :func:`render_resumable` does the rest once for
all: it deletes what an interrupted run left (``.<name>.tmp.*``), counts what is done, renders the
missing clips in worker processes if asked (at most ``4 * jobs`` waiting, so a lazy sequence of
draws is consumed in order in this process whatever ``jobs``), shows progress and returns each
clip's events cleaned as DESED annotations.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from desed_task.data_generation.scaper.annotations import clean_clip_events
from desed_task.errors import UserError

logger = logging.getLogger(__name__)

Event = tuple[float, float, str]  # (onset_s, offset_s, class)


class DrawMismatch(UserError):
    """A clip on disk was drawn with other options than the run that resumes it."""


@dataclass(frozen=True)
class ClipJob:
    """One drawn clip: its file stem, what rendering needs and what resuming compares.

    ``payload`` goes to the worker process as it is, so it must pickle (a plan, a JAMS as text);
    ``draw`` stays in this process. ``files`` mark the clip complete when all are on disk, the
    first one (the JAMS, written last) is the one ``reuse`` reads.
    """

    name: str
    files: tuple[Path, ...]
    payload: Any
    draw: Any = None

    @property
    def complete(self) -> bool:
        return all(path.is_file() for path in self.files)


def remove_stale_files(folders: Iterable[Path]) -> None:
    """Create ``folders`` and delete the ``.<name>.tmp.*`` files an interrupted run left there."""
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(".*.tmp.*"):
            stale.unlink()


def render_resumable(
    clips: Iterable[ClipJob],
    files: Sequence[tuple[Path, ...]],
    folders: Sequence[Path],
    render: Callable[[Any], list[Event]],
    reuse: Callable[[ClipJob], list[Event]],
    duration_s: float,
    jobs: int = 1,
    keep_classes: Sequence[str] | None = None,
    description: str = "soundscapes",
) -> dict[str, list[Event]]:
    """Render the incomplete clips, read back the complete ones, in ``clips``' order.

    Args:
        clips: the drawn clips, possibly a lazy iterator (consumed in order in this process).
        files: each clip's ``ClipJob.files``, in the same order, known before the draws (to count
            what is done and size the progress bar).
        folders: the output folders (stale temporary files are removed from each first).
        render: module-level function ``render(payload) -> raw events``, run in a worker process
            when ``jobs > 1``; it writes the clip's files, the JAMS last.
        reuse: ``reuse(clip) -> raw events`` for a complete clip; raises :class:`DrawMismatch`
            when the files on disk belong to another draw.
        duration_s: clip duration in seconds (events are cleaned to it).
        jobs: worker processes (1: render in this process).
        keep_classes: classes kept in the returned events (None: all).
        description: log and progress-bar label.

    Returns:
        ``{"<name>.wav": [(onset_s, offset_s, class), ...]}``, cleaned as DESED annotations
        (:func:`~desed_task.data_generation.scaper.annotations.clean_clip_events`).
    """
    remove_stale_files([Path(f) for f in folders])
    n_done = sum(all(path.is_file() for path in clip_files) for clip_files in files)
    logger.info(
        "%s: %d clips to render (%d already on disk) into %s",
        description, len(files) - n_done, n_done, folders[0],
    )  # fmt: skip
    raw: dict[str, list[Event] | Future] = {}
    pending: deque[Future] = deque()
    pool = ProcessPoolExecutor(max_workers=jobs) if jobs > 1 else None
    progress = tqdm(total=len(files), desc=description)
    try:
        for clip in clips:
            if clip.complete:
                raw[clip.name] = reuse(clip)
                progress.update()
            elif pool is None:
                raw[clip.name] = render(clip.payload)
                progress.update()
            else:
                raw[clip.name] = future = pool.submit(render, clip.payload)
                pending.append(future)
                while len(pending) > 4 * jobs or (pending and pending[0].done()):
                    pending.popleft().result()
                    progress.update()
        while pending:
            pending.popleft().result()
            progress.update()
    finally:
        progress.close()
        if pool is not None:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
    keep = set(keep_classes) if keep_classes is not None else None
    events = {}
    for name, result in raw.items():
        clip_events = result.result() if isinstance(result, Future) else result
        events[f"{name}.wav"] = clean_clip_events(
            [e for e in clip_events if keep is None or e[2] in keep], duration_s
        )
    return events
