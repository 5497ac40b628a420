"""The table of post-processing methods: ``method`` of the post-processing file -> the method
(``method.PostProcessingMethod``). A new method is one file with its class and one line here;
to be tuned, a tuner in ``desed_task.postprocessing.cli.TUNERS``."""

from __future__ import annotations

from desed_task.decoding.csebbs import CSEBBs
from desed_task.decoding.median_per_class import MedianPerClass
from desed_task.decoding.method import PostProcessingMethod

METHODS: dict[str, PostProcessingMethod] = {method.name: method for method in (MedianPerClass(), CSEBBs())}
