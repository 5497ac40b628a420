"""desed_task: the DCASE 2021 Task 4 baseline, re-implemented on today's PyTorch and Lightning."""

__version__ = "0.1.0"
