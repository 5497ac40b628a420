"""The demo dataset: a procedural soundbank (``procedural_sounds``, ``soundbank``) mixed into a
small DESED-shaped dataset (``dataset``). ``python -m desed_task.data_generation.demo --root
data/demo`` builds it; a config's ``demo:`` section builds it on first use
(:func:`ensure_demo_dataset`)."""

from desed_task.data_generation.demo.dataset import (
    DemoLayout,
    DemoSizes,
    build_demo_dataset,
    ensure_demo_dataset,
)

__all__ = ["DemoLayout", "DemoSizes", "build_demo_dataset", "ensure_demo_dataset"]
