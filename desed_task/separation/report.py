"""What a `separate_folder` run did, and the final per-folder table of `run_separation.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SeparationReport:
    """Counts of one folder run.

    Attributes:
        separated: clips separated and written by this run.
        already_done: clips whose complete output was already there (skipped).
        failed: clip path -> reason, for clips that could not be read, separated or written.
            They have no output; running again retries them.
    """

    separated: int = 0
    already_done: int = 0
    failed: dict[Path, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Number of clips seen."""
        return self.separated + self.already_done + len(self.failed)


def format_reports(reports: dict[str, SeparationReport]) -> str:
    """A plain-text table, one row per folder name, then the failed clips by name."""
    width = max([len("folder"), *(len(name) for name in reports)])
    lines = [f"{'folder':<{width}}  separated  already done  failed"]
    for name, report in reports.items():
        lines.append(
            f"{name:<{width}}  {report.separated:>9}  {report.already_done:>12}  "
            f"{len(report.failed):>6}"
        )
    for name, report in reports.items():
        for path, reason in report.failed.items():
            lines.append(f"FAILED [{name}] {path}: {reason}")
    return "\n".join(lines)
