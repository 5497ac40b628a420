"""Index of a scaper soundbank: ``foreground/<label>/*.wav`` and ``background/<label>/*.wav``.

DESED foregrounds come in four onset/offset variants, told apart by a ``_nOn``, ``_nOff`` or
``_nOn_nOff`` suffix on the file stem (2021 soundbank, e.g. ``Blender/123_nOn.wav``) or on the
class folder (original DESED soundbank, e.g. ``Blender_nOn/123.wav``):

- ``_nOn``: the sound is already going on when the file starts (no onset in the file);
- ``_nOff``: the sound still goes on when the file ends (no offset in the file);
- ``_nOn_nOff``: neither onset nor offset (a stationary sound cut from a longer recording).

The class of such a file is its folder name without the suffix (``Blender_nOn`` -> ``Blender``).
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from desed_task.errors import UserError

AUDIO_SUFFIXES = (".wav", ".flac")


class OnsetOffsetVariant(enum.Enum):
    """Whether a foreground file contains the onset and the offset of its sound."""

    COMPLETE = ""
    NO_ONSET = "_nOn"
    NO_OFFSET = "_nOff"
    NO_ONSET_NO_OFFSET = "_nOn_nOff"


def _variant_of_name(name: str) -> OnsetOffsetVariant | None:
    # the longest suffix first: "_nOn_nOff" also ends with "_nOff"
    for variant in (
        OnsetOffsetVariant.NO_ONSET_NO_OFFSET,
        OnsetOffsetVariant.NO_ONSET,
        OnsetOffsetVariant.NO_OFFSET,
    ):
        if name.endswith(variant.value):
            return variant
    return None


def onset_offset_variant(path: Path) -> OnsetOffsetVariant:
    """The onset/offset variant of a foreground file, from its file stem or its folder name."""
    return (
        _variant_of_name(path.stem)
        or _variant_of_name(path.parent.name)
        or OnsetOffsetVariant.COMPLETE
    )


def class_of_label(label: str) -> str:
    """A soundbank folder label without its ``_nOn``/``_nOff``/``_nOn_nOff`` suffix."""
    variant = _variant_of_name(label)
    return label[: -len(variant.value)] if variant else label


class SoundbankNotFound(UserError):
    """A soundbank folder, or its background audio, is absent; the message names the folder."""


@functools.lru_cache(maxsize=65536)
def audio_duration_s(path: Path) -> float:
    """Duration of an audio file in seconds (cached per process)."""
    return float(sf.info(str(path)).duration)


def _list_label_folders(folder: Path) -> dict[str, tuple[Path, ...]]:
    if not folder.is_dir():
        raise SoundbankNotFound(f"soundbank folder not found: {folder}")
    files: dict[str, tuple[Path, ...]] = {}
    for label_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        audio = tuple(sorted(p for p in label_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES))
        if audio:
            files[label_dir.name] = audio
    return files


@dataclass(frozen=True)
class SoundbankIndex:
    """Sorted listing of a soundbank's foreground and background files (deterministic order).

    ``foreground`` and ``background`` map a folder label (as scaper sees it) to its files.
    """

    foreground_dir: Path
    background_dir: Path
    foreground: dict[str, tuple[Path, ...]]
    background: dict[str, tuple[Path, ...]]

    @classmethod
    def scan(cls, foreground_dir: Path, background_dir: Path) -> SoundbankIndex:
        """List the label folders and audio files of a soundbank (symbolic links followed)."""
        foreground_dir, background_dir = Path(foreground_dir), Path(background_dir)
        index = cls(
            foreground_dir=foreground_dir,
            background_dir=background_dir,
            foreground=_list_label_folders(foreground_dir),
            background=_list_label_folders(background_dir),
        )
        if not index.background:
            raise SoundbankNotFound(f"no background audio under {background_dir}")
        return index

    @functools.cached_property
    def classes(self) -> tuple[str, ...]:
        """The foreground classes, variant suffixes removed, sorted."""
        return tuple(sorted({class_of_label(label) for label in self.foreground}))

    def class_files(self, class_name: str) -> tuple[tuple[str, Path], ...]:
        """All ``(folder label, file)`` pairs of a class, over its variant folders."""
        pairs = tuple(
            (label, path)
            for label, paths in self.foreground.items()
            if class_of_label(label) == class_name
            for path in paths
        )
        if not pairs:
            raise KeyError(f"no foreground files for class {class_name!r} in {self.foreground_dir}")
        return pairs
