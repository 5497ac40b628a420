"""The package's floors: no module imports (even lazily, inside a function) from a floor above
its own. The scripts at the repository root are the top floor. Inside the middle floor the
packages have an order too (``MIDDLE_ORDER``): a package imports only packages of a lower rank
(packages of one rank are independent of each other), so the floor has no cycle."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "desed_task"
FLOORS = {
    1: {"errors", "command_line", "sets", "config", "threads", "devices", "warnings_filters", "checkpoints", "features",
        "nnet"},
    2: {"data", "data_generation", "decoding", "separation", "evaluation", "postprocessing", "inference",
        "export", "embeddings"},
    3: {"training"},
}
FLOOR_OF = {name: floor for floor, names in FLOORS.items() for name in names}
# the middle floor, lowest first: audio and tables; scores -> events (decoding); what reads
# them (soundscapes, metrics, embeddings); separation and the tuning of post-processing;
# inference; export
MIDDLE_ORDER = {
    "data": 1,
    "decoding": 2,
    "data_generation": 3, "evaluation": 3, "embeddings": 3,
    "separation": 4, "postprocessing": 4,
    "inference": 5,
    "export": 6,
}


def _imported_parts(tree: ast.AST) -> set[str]:
    parts = set()
    for node in ast.walk(tree):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        parts |= {name.split(".")[1] for name in names if name.startswith("desed_task.")}
    return parts


def _imports() -> list[tuple[Path, str, str]]:
    """(module path, its part, imported part) for every import of another part."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        part = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if part == "__init__":
            continue
        found += [(path, part, imported) for imported in _imported_parts(ast.parse(path.read_text())) if imported != part]
    return found


def test_every_part_of_the_package_has_a_floor():
    parts = {path.stem if path.is_file() else path.name for path in PACKAGE.iterdir()
             if (path.suffix == ".py" or (path / "__init__.py").exists()) and path.name != "__init__.py"}
    assert parts == set(FLOOR_OF), "give the new part a floor in FLOORS"
    assert set(MIDDLE_ORDER) == FLOORS[2], "give the new middle-floor package a rank in MIDDLE_ORDER"


def test_no_import_runs_upward():
    upward = [f"{path.relative_to(PACKAGE.parent)} imports desed_task.{imported}"
              for path, part, imported in _imports() if FLOOR_OF[imported] > FLOOR_OF[part]]
    assert not upward, upward


def test_no_import_runs_against_the_order_of_the_middle_floor():
    against = [f"{path.relative_to(PACKAGE.parent)} imports desed_task.{imported} "
               f"(rank {MIDDLE_ORDER[imported]} >= {MIDDLE_ORDER[part]})"
               for path, part, imported in _imports()
               if part in MIDDLE_ORDER and imported in MIDDLE_ORDER and MIDDLE_ORDER[imported] >= MIDDLE_ORDER[part]]
    assert not against, against


def test_inference_decodes_without_the_evaluation():
    """Detecting events needs scores -> events (``decoding``), never the metrics."""
    entering = sorted(f"{path.relative_to(PACKAGE.parent)}" for path, part, imported in _imports()
                      if part == "inference" and imported == "evaluation")
    assert not entering, entering
