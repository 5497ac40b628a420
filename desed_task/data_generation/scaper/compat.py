"""Import scaper on NumPy >= 2.

scaper 1.6.5 still refers to ``np.Inf``, an alias NumPy 2.0 removed. ``import_scaper`` restores
that single alias (it is the same object as ``np.inf``) before importing scaper, so every module
of this package imports scaper through here.
"""

from __future__ import annotations

import types

import numpy as np


def import_scaper() -> types.ModuleType:
    """Return the ``scaper`` module, after restoring the NumPy aliases it needs."""
    if "Inf" not in np.__dict__:
        np.Inf = np.inf  # type: ignore[attr-defined]
    import scaper

    return scaper
