"""The notebooks: stored as generated, executed top to bottom on a real kernel (smoke profile,
synthetic data, offline), their comparison shown; a broken cell fails the execution."""
import copy
import json
import os

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from notebooks import make_notebooks  # the generator lives beside the notebooks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(ROOT, "notebooks")

NAMES = [exp.name for exp in make_notebooks.EXPERIMENTS]
LOSS_NAMES = [exp.name for exp in make_notebooks.EXPERIMENTS if exp.report == "losses"]
# One tiny selection per notebook, all into one folder: Table 3.1's VAE/ELBO and Table 3.2's
# VAE/MI and VAE/WAE at latent 128, so the second notebook compares the three VAE losses;
# thesis 003's faithful face GAN and the bilinear game, without metrics (the evaluator of
# 64x64 images would take half a minute to train; tests/test_faces.py scores a face run
# and measures its diversity in a tiny evaluator's features).
SMOKE = dict(PROFILE="smoke", DATASET="synthetic", FAMILIES="vae@128", METRICS="evaluator",
             SEEDS=1)
SMOKE_OF = {"thesis_003": dict(SMOKE, FAMILIES="faces/faithful bilinear", METRICS="none")}


def _load(name):
    return nbformat.read(os.path.join(NOTEBOOKS, f"{name}.ipynb"), as_version=4)


def _with_parameters(nb, **values):
    """``nb`` with a cell setting ``values`` after its ``parameters`` cell (as papermill)."""
    nb = copy.deepcopy(nb)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{k} = {v!r}" for k, v in values.items())
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source, metadata={
        "tags": ["injected-parameters"]}))
    return nb


def _execute(nb, cwd, timeout=300):
    """Run every cell on a python3 kernel started in ``cwd``; CellExecutionError on the
    first failing cell."""
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def _outputs(nb, kind):
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
            if kind in out.get("data", {})]


def test_stored_notebooks_and_readme_are_what_the_generator_writes():
    expected = make_notebooks.expected_files()
    assert set(expected) == {*(os.path.join(NOTEBOOKS, f"{n}.ipynb") for n in NAMES),
                             os.path.join(ROOT, "README.md")}
    for path, text in expected.items():
        with open(path, encoding="utf-8") as f:
            assert f.read() == text, f"{path} is stale: run python notebooks/make_notebooks.py"
    for name in NAMES:  # stored without outputs
        nb = _load(name)
        assert all(c.outputs == [] and c.execution_count is None
                   for c in nb.cells if c.cell_type == "code")


def test_badges_and_repository_url_come_from_one_setting():
    unset = make_notebooks.readme_section("")
    assert "colab.research.google.com" not in unset and "GITHUB_REPOSITORY" in unset
    for text in make_notebooks.render("").values():  # no invented URL anywhere
        assert "github.com" not in text and "YOUR-ORG" not in text
        assert 'REPO_URL = \\"\\"' in text
    published = make_notebooks.readme_section("someone/genbench", branch="dev")
    for name in NAMES:
        assert (f"https://colab.research.google.com/github/someone/genbench/blob/dev/"
                f"notebooks/{name}.ipynb") in published
    for text in make_notebooks.render("someone/genbench").values():
        assert 'REPO_URL = \\"https://github.com/someone/genbench.git\\"' in text


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Every notebook executed in order into one output folder (name -> notebook)."""
    out = tmp_path_factory.mktemp("notebook-runs")
    done = {}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GENBENCH_CACHE", str(out / "cache"))  # the evaluator, trained for synthetic
        for name in NAMES:
            nb = _with_parameters(_load(name), OUT=str(out / "report"),
                                  **SMOKE_OF.get(name, SMOKE))
            done[name] = _execute(nb, NOTEBOOKS)
    return out / "report", done


def _text(nb) -> str:
    """Everything the notebook's code cells printed."""
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs)


def _markdown(nb) -> str:
    return "".join(o["data"]["text/markdown"] for o in _outputs(nb, "text/markdown"))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.slow
def test_notebook_finds_the_suite_and_shows_run_alls_progress(executed, name):
    text = _text(executed[1][name])
    assert f"genbench: {ROOT}" in text  # found the checkout by walking up from notebooks/
    assert "No GPU or TPU: profile 'quick'" in text
    assert "epoch 2/2" in text and "[run_all] wrote" in text  # run_all's live progress


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.slow
def test_notebook_shows_its_table_and_figures(executed, name):
    nb = executed[1][name]
    tables = _markdown(nb)
    assert "| model (loss) |" in tables and "VAE (" in tables and "thesis FID" in tables
    assert len(_outputs(nb, "image/png")) >= 2  # samples and curves, at least


@pytest.mark.slow
def test_thesis_003_notebook_shows_the_face_gan_and_the_bilinear_game(executed):
    out, notebooks = executed
    nb = notebooks["thesis_003"]
    text = _text(nb)
    assert "--only faces/faithful bilinear" in text and "--tables" not in text
    assert "[run_all] thesis 003: faces-faithful-b2-z32-s0" in text
    assert "pixel space only" in text  # --metrics none: said before anything trains
    shown = _markdown(nb)
    assert "## Thesis 003: the face GAN" in shown and "| faces-faithful-b2-z32-s0 |" in shown
    assert "Offline stand-in" in shown and "not measured" in shown
    assert "### faces-faithful-b2-z32-s0: control grid over training" in shown
    assert "## Thesis 003: the bilinear game" in shown and "extragradient" in shown
    # curves, the run's control timeline and diversity, the bilinear figure
    assert len(_outputs(nb, "image/png")) == 4


@pytest.mark.slow
def test_notebooks_share_a_folder_whose_readme_compares_the_losses(executed):
    out, notebooks = executed
    readme = (out / "README.md").read_text()
    assert "## Experiment 1" in readme and "## Experiment 2" in readme
    assert "### VAE (vae): elbo, mi, wae" in readme
    for kind in ("samples", "curves", "metrics"):
        assert f"](figures/vae-{kind}.png)" in readme and (out / f"figures/vae-{kind}.png").exists()
    tables = "".join(o["data"]["text/markdown"]
                     for o in _outputs(notebooks["table_3_2"], "text/markdown"))
    assert "VAE (elbo)" in tables and "VAE (wae)" in tables  # 3.2 shown beside 3.1
    assert "### VAE (vae): elbo, mi, wae" in tables  # and its losses compared


def test_a_broken_cell_fails_the_notebook(tmp_path):
    nb = _load(NAMES[0])
    nb.cells.insert(2, nbformat.v4.new_code_cell("raise ValueError('broken on purpose')"))
    with pytest.raises(CellExecutionError, match="broken on purpose"):
        _execute(nb, NOTEBOOKS)
    assert all(c.execution_count is None for c in nb.cells[3:] if c.cell_type == "code")


def test_setup_outside_a_checkout_names_the_choices(tmp_path):
    nb = _load(NAMES[0])
    nb.cells = nb.cells[:2]  # the introduction and the set-up cell
    with pytest.raises(CellExecutionError) as err:
        _execute(nb, tmp_path)
    message = str(err.value)
    assert "genbench not found" in message
    for choice in ("inside a checkout", "DRIVE_FOLDER", "REPO_URL"):
        assert choice in message
