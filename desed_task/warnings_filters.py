"""Targeted filters for warnings of dependencies whose cause we cannot fix (their own
dependencies) or that do not apply (advice about what we do on purpose).

Each filter names the one message it hides and why; anything else is still shown.
"""

from __future__ import annotations

import warnings

DEPENDENCY_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # dcase_util (imported by sed_eval) imports pkg_resources at import time
    (r"pkg_resources is deprecated as an API", UserWarning),
    # Lightning 2.6 flattens batches with torch's LeafSpec, deprecated in torch 2.13
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
    # under DDP, Lightning advises sync_dist for every epoch-level value; our metrics are
    # computed on rank 0 from the gathered outputs and broadcast: the same on every rank (the
    # advice is kept for the per-rank losses)
    # the SSEP + SED ensemble keeps its frozen parts in eval mode on purpose (2021 did too)
    (r"Found \d+ module\(s\) in eval mode at the start of training", UserWarning),
    (r"It is recommended to use `self.log\('(hp_metric|val/obj_metric|(val/(weak|synth)|test)/(student|teacher)/(?!loss))", UserWarning),
)


def install() -> None:
    """Hide the dependency warnings of `DEPENDENCY_WARNINGS` (idempotent)."""
    for message, category in DEPENDENCY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
