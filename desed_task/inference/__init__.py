"""Applying a trained SED model to recordings of any rate, channel count and length.

``SoundEventDetector`` (Python API), ``LongFormScorer`` (sliding windows with averaged overlaps,
the one path that scores a clip of any length), ``DetectionStream`` (``SoundEventDetector.stream``:
events of a live stream as they become final) and ``python -m desed_task.inference`` (CLI).
"""

from desed_task.inference.detector import SEDPipeline, SoundEventDetector
from desed_task.inference.stream import DetectionStream
from desed_task.inference.windows import LongFormScorer

__all__ = ["DetectionStream", "LongFormScorer", "SEDPipeline", "SoundEventDetector"]
