"""The import layers of docs/design.md, checked on every module's source (no import runs).

common/ and data/ at the bottom; models/ and metrics/; training/; experiments/; run_all.py.
A module may import its own layer or any layer below, never one above.
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
LAYER = {"common": 0, "data": 0, "models": 1, "metrics": 1, "training": 2, "experiments": 3,
         "run_all": 4}
# common/ is below data/: the shared utilities import nothing of the suite's but themselves.
BELOW_DATA = {"common"}


def _package_modules():
    for package in LAYER:
        folder = ROOT / package
        if folder.is_dir():
            yield from sorted(folder.rglob("*.py"))
        elif (ROOT / f"{package}.py").is_file():
            yield ROOT / f"{package}.py"


def _imported_packages(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in LAYER:
                yield top, node.lineno


@pytest.mark.parametrize("path", list(_package_modules()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_runs_up_a_layer(path):
    own = path.relative_to(ROOT).parts[0].removesuffix(".py")
    upward = [f"line {line}: {top}" for top, line in _imported_packages(path)
              if LAYER[top] > LAYER[own] or (own in BELOW_DATA and top == "data")]
    assert not upward, f"{path.relative_to(ROOT)} imports a higher layer: {upward}"


def test_nothing_in_the_package_imports_the_entry_script():
    users = [str(p.relative_to(ROOT)) for p in _package_modules()
             if p.name != "run_all.py" and any(top == "run_all" for top, _ in _imported_packages(p))]
    assert users == []


def test_the_entry_script_stays_thin():  # issue 22: "at most about 120 lines"
    lines = (ROOT / "run_all.py").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 125, f"run_all.py has {len(lines)} lines; the work belongs in experiments/"
