"""Per-class values (thresholds, median windows) from a small YAML or TSV file.

YAML: a mapping ``class: value``. TSV: two columns, ``event_label`` and the value (a
header line is optional). Every class of the model must be given, and no other.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from desed_task.decoding.errors import ClassValuesError


def _read_pairs(path: Path) -> dict[str, str]:
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            mapping = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ClassValuesError(f"{path}: not valid YAML ({error})") from None
        if not isinstance(mapping, dict):
            raise ClassValuesError(f"{path}: expected a mapping 'class: value'")
        return {str(k): v for k, v in mapping.items()}
    pairs: dict[str, str] = {}
    for line_number, row in enumerate(csv.reader(text.splitlines(), delimiter="\t"), start=1):
        if not row or not "".join(row).strip() or row[0].startswith("#"):
            continue
        if len(row) != 2:
            raise ClassValuesError(f"{path}, line {line_number}: expected 2 tab-separated columns (event_label, value), got {len(row)}")
        if line_number == 1 and row[0].strip() == "event_label":
            continue
        pairs[row[0].strip()] = row[1].strip()
    return pairs


def read_class_values(
    path: str | Path, class_names: Sequence[str], kind: type = float, what: str = "value"
) -> list:
    """The values of ``path`` in the order of ``class_names``.

    Args:
        path: YAML (``class: value``) or TSV (event_label, value) file.
        class_names: (n_classes,) the model's classes, in output order.
        kind: ``float`` (thresholds) or ``int`` (median windows in frames).
        what: the name of the value in error messages ("threshold", "median window").

    Returns:
        (n_classes,) values.

    Raises:
        ClassValuesError: unreadable file, a class of another model, a missing class or a
            value that is not a number.
    """
    path = Path(path)
    if not path.is_file():
        raise ClassValuesError(f"{path}: no such file (per-class {what}s: YAML 'class: value' or a TSV event_label<TAB>value)")
    return class_values_from_mapping(_read_pairs(path), class_names, kind, what, str(path))


def class_values_from_mapping(
    mapping: Mapping, class_names: Sequence[str], kind: type = float, what: str = "value", source: str = "<mapping>"
) -> list:
    """The values of a ``{class: value}`` mapping in the order of ``class_names``.

    Args:
        mapping: {class name: value}, e.g. one entry of a post-processing YAML file.
        class_names: (n_classes,) the model's classes, in output order.
        kind: ``float`` or ``int``.
        what: the name of the value in error messages.
        source: where the mapping comes from (file and key), for error messages.

    Returns:
        (n_classes,) values.

    Raises:
        ClassValuesError: a class of another model, a missing class or a value that is not
            a number (the message names ``source`` and the class).
    """
    pairs = {str(k): v for k, v in mapping.items()}
    unknown = sorted(set(pairs) - set(class_names))
    if unknown:
        raise ClassValuesError(f"{source}: class(es) {', '.join(unknown)} are not classes of this model ({', '.join(class_names)})")
    missing = [name for name in class_names if name not in pairs]
    if missing:
        raise ClassValuesError(f"{source}: no {what} for class(es) {', '.join(missing)}")
    values = []
    for name in class_names:
        try:
            if isinstance(pairs[name], bool):
                raise ValueError
            value = kind(pairs[name])
            if kind is int and float(pairs[name]) != value:
                raise ValueError
        except (TypeError, ValueError):
            raise ClassValuesError(f"{source}: {what} of {name} is {pairs[name]!r}, not {'an integer' if kind is int else 'a number'}") from None
        values.append(value)
    return values
