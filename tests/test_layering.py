"""The package's floors: no module imports (even lazily, inside a function) from a floor above
its own. The scripts at the repository root are the top floor."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "desed_task"
FLOORS = {
    1: {"config", "threads", "devices", "warnings_filters", "checkpoints", "features", "nnet"},
    2: {"data", "data_generation", "separation", "evaluation", "postprocessing", "inference", "export",
        "embeddings"},
    3: {"training"},
}
FLOOR_OF = {name: floor for floor, names in FLOORS.items() for name in names}


def _imported_parts(tree: ast.AST) -> set[str]:
    parts = set()
    for node in ast.walk(tree):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        parts |= {name.split(".")[1] for name in names if name.startswith("desed_task.")}
    return parts


def test_every_part_of_the_package_has_a_floor():
    parts = {path.stem if path.is_file() else path.name for path in PACKAGE.iterdir()
             if (path.suffix == ".py" or (path / "__init__.py").exists()) and path.name != "__init__.py"}
    assert parts == set(FLOOR_OF), "give the new part a floor in FLOORS"


def test_no_import_runs_upward():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        part = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if part == "__init__":
            continue
        for imported in _imported_parts(ast.parse(path.read_text())):
            if FLOOR_OF[imported] > FLOOR_OF[part]:
                upward.append(f"{path.relative_to(PACKAGE.parent)} imports desed_task.{imported}")
    assert not upward, upward
