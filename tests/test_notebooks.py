"""Each experiment's notebook is valid and runs a command run_all.py accepts."""
import json
import os
import re
import shlex

import pytest

import run_all

HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks")


@pytest.mark.parametrize("table", ["table_3_1", "table_3_2"])
def test_notebook_runs_its_table(table, tmp_path):
    with open(os.path.join(HERE, f"{table}.ipynb"), encoding="utf-8") as f:
        nb = json.load(f)
    assert nb["nbformat"] == 4
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    command = re.search(r"!python run_all\.py (.*)", code).group(1)
    values = {"$PROFILE": "smoke", "$DATASET": "synthetic", "$OUT": str(tmp_path)}
    args = run_all.parse_args([values.get(a, a) for a in shlex.split(command)])
    assert args.tables == [table] and args.profile == "smoke"
    selected = run_all.select_rows(args.only, args.tables)
    assert [t.name for t, rows in selected] == [table] and selected[0][1]
