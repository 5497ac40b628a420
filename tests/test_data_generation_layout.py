"""data_generation by audience: `scaper/` (shared), `demo/` and `dcase2021/` (the `datagen`
extra). The demo and the 2021 generator import the shared code only, never each other, and the
shared code imports neither (tests/test_layering.py sees data_generation as one part)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "desed_task" / "data_generation"
ALLOWED = {"scaper": {"scaper"}, "demo": {"scaper", "demo"}, "dcase2021": {"scaper", "dcase2021"}}


def _audiences_imported(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    prefix = "desed_task.data_generation."
    return {name[len(prefix):].split(".")[0] for name in names if name.startswith(prefix)}


def test_every_module_belongs_to_one_audience():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert not loose, f"put {loose} in one of {sorted(ALLOWED)}"
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} == set(ALLOWED)


def test_audiences_import_only_the_shared_code():
    crossing = []
    for audience, allowed in ALLOWED.items():
        for path in (PACKAGE / audience).rglob("*.py"):
            for imported in _audiences_imported(ast.parse(path.read_text())) - allowed:
                crossing.append(f"{path.relative_to(PACKAGE.parent)} imports data_generation.{imported}")
    assert not crossing, crossing
