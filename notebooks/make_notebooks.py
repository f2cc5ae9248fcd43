"""Writes the notebooks, one per experiment, and the README's list of them (run it after
changing this file; ``tests/test_notebooks.py`` checks the stored files are what it writes).

    python notebooks/make_notebooks.py           # write notebooks/*.ipynb and the README list
    python notebooks/make_notebooks.py --check   # exit 1 if a stored file differs

The notebooks are stored without outputs. Each one: finds the suite (a checkout, Google
Drive or a repository URL), says which profile the runtime fits, takes its parameters
(a cell tagged ``parameters``: papermill, or a test, may inject values after it), shows
the plan of what it is about to run (``run_all.py --plan``: hours on the runtime's
accelerator, memory at the batch), runs ``run_all.py`` with live progress, then shows the comparison inline (``experiments.compare``
for the thesis 004 tables, ``experiments.thesis_003`` for thesis 003; see ``REPORTS``).
Adding an experiment is one more entry in ``EXPERIMENTS``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
README = os.path.join(ROOT, "README.md")

#: Where the suite is published, as GitHub "owner/name", and the branch its notebooks are
#: opened from: the one place the README's "Open in Colab" badges and the notebooks' default
#: repository URL come from. Empty until the suite is published: set it then and rerun this
#: script (no badge and no URL is written while it is empty).
GITHUB_REPOSITORY = ""
GITHUB_BRANCH = "main"

README_BEGIN = "<!-- notebooks: written by notebooks/make_notebooks.py, do not edit -->"
README_END = "<!-- end of notebooks -->"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One notebook: ``name`` (the file's name), what it runs and what its comparison shows.

    tables: run_all.py's ``--tables`` (thesis 004); empty for experiments that ``--only``
        alone selects (thesis 003).
    selection: the default of the notebook's ``FAMILIES`` parameter, run_all.py's ``--only``
        ("": every row of ``tables``).
    report: what the comparison cell shows, a key of :data:`REPORTS`: "losses" (the tables,
        then each family's losses side by side: ``experiments.compare``) or "thesis_003"
        (the face GAN's table and figures, each run's control grid and diversity, the
        bilinear game: ``experiments.thesis_003``).
    compare_with: ("losses") other tables shown when they are in the same output folder.
    """
    name: str
    title: str
    summary: str
    tables: tuple = ()
    selection: str = ""
    report: str = "losses"
    compare_with: tuple = ()
    dataset: str = "cifar100"


EXPERIMENTS = (
    Experiment(
        name="table_3_1", title="Thesis 004, Experiment 1 (Table 3.1)",
        summary="Each family with its baseline loss: VAE/ELBO, StyleGAN2/Wasserstein-GP, "
                "Stable Diffusion/MSE, DALL-E/cross-entropy, on CIFAR-100.",
        tables=("table_3_1",), compare_with=("table_3_2",)),
    Experiment(
        name="table_3_2", title="Thesis 004, Experiment 2 (Table 3.2)",
        summary="Two alternative losses per family: VAE MI/WAE, StyleGAN2 hinge/LSGAN, "
                "Stable Diffusion MAE/Huber, DALL-E MSE/perceptual, on CIFAR-100; shown beside "
                "the baselines of Table 3.1 when they ran into the same folder.",
        tables=("table_3_2",), compare_with=("table_3_1",)),
    Experiment(
        name="thesis_003", title="Thesis 003: the face GAN and the bilinear game",
        summary="The CelebA face GAN of appendices 2-4: the listing as written (`faithful`), "
                "the same networks trained as the thesis advises (`fixed`), and RMSprop, Adam "
                "and ExtraAdam on it with one budget (`optimizers`), with FID/KID and the "
                "control grid's diversity over training (pixels and metric-network features: "
                "mode collapse measured); then min max theta*phi under simultaneous, "
                "alternating, implicit and extragradient steps and Adam (`bilinear`).",
        selection="faces/faithful faces/fixed faces/optimizers bilinear", report="thesis_003",
        dataset="celeb_a"),
)


def repository_url(repository: str) -> str:
    """The git URL of a GitHub "owner/name", or "" when not set."""
    return f"https://github.com/{repository}.git" if repository else ""


def colab_url(repository: str, branch: str, name: str) -> str:
    """Colab's address of notebook ``name`` in a published GitHub repository."""
    return (f"https://colab.research.google.com/github/{repository}/blob/{branch}/"
            f"notebooks/{name}.ipynb")


def _cell(cell_id, kind, source, **metadata):
    cell = {"cell_type": kind, "id": cell_id, "metadata": metadata,
            "source": source.strip("\n").splitlines(True)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


INTRO = """
# {title}

{summary}

**Where to run it.** Inside a checkout of the suite (Jupyter, VS Code) it runs as is. On
Colab, either put the suite in Google Drive (the folder holding `run_all.py`, by default
`MyDrive/genbench`) or give the repository's git URL in the first cell's `REPO_URL` field.
Runtime > Change runtime type: a GPU or TPU for the `paper` profile; `quick` runs on a CPU
in minutes per run, `smoke` checks the set-up in about a minute. Runs resume from their
last checkpoint when the runtime is recycled: put `OUT` on Google Drive to keep them.
"""

SETUP = '''
# @title Set up: find the suite (a checkout, Google Drive, or a repository URL)
# Colab: the git URL of the genbench repository, cloned into /content/genbench ...
REPO_URL = "{repo_url}"  # @param {{type:"string"}}
# ... or the suite's folder on Google Drive (mounted when needed).
DRIVE_FOLDER = "/content/drive/MyDrive/genbench"  # @param {{type:"string"}}
import os
import subprocess
import sys


def find_suite(start):
    """The folder holding run_all.py at or above ``start``, or None."""
    folder = os.path.abspath(start)
    while not os.path.isfile(os.path.join(folder, "run_all.py")):
        if os.path.dirname(folder) == folder:
            return None
        folder = os.path.dirname(folder)
    return folder


IN_COLAB = "google.colab" in sys.modules
SUITE = find_suite(os.getcwd())
if SUITE is None and IN_COLAB and REPO_URL:
    if not os.path.isdir("/content/genbench"):
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, "/content/genbench"],
                       check=True)
    SUITE = find_suite("/content/genbench")
elif SUITE is None and IN_COLAB and DRIVE_FOLDER:
    from google.colab import drive
    drive.mount("/content/drive")
    SUITE = find_suite(DRIVE_FOLDER)
if SUITE is None:
    raise RuntimeError(
        f"genbench not found from {{os.getcwd()}}. Either open this notebook inside a checkout "
        f"of the suite (any folder under the one holding run_all.py); or, on Colab, put the "
        f"suite in Google Drive and give its folder in DRIVE_FOLDER (now {{DRIVE_FOLDER!r}}), "
        f"or give the repository's git URL in REPO_URL (now {{REPO_URL!r}}); then run this "
        f"cell again.")
os.chdir(SUITE)
sys.path.insert(0, SUITE)
if IN_COLAB:  # a checkout already has them (README: Set up and test)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", "requirements.txt"],
                   check=True)
print("genbench:", SUITE)
'''

CHECK = '''
# Which accelerator this runtime has, and which profile fits it.
from experiments.notebook import suggest_profile
SUGGESTED_PROFILE = suggest_profile()
'''

PARAMETERS = '''
# @title Parameters
# Profile: smoke | quick | paper; empty: the one suggested above.
PROFILE = ""  # @param ["", "smoke", "quick", "colab", "paper"]
# Dataset: cifar100 (thesis 004's), celeb_a (thesis 003's), cifar10, fashion_mnist, mnist, folder:PATH, synthetic.
DATASET = "{dataset}"  # @param {{type:"string"}}
# A folder holding the official archives or idx files (offline); empty: download them.
DATA_DIR = ""  # @param {{type:"string"}}
# Output folder; empty: reports/<profile>/<dataset> in the suite. On Colab, a Drive folder keeps runs.
OUT = ""  # @param {{type:"string"}}
# Seeds 0..SEEDS-1 per row: the tables report mean and std across seeds.
SEEDS = 1  # @param {{type:"integer"}}
{selection_help}
FAMILIES = "{selection}"  # @param {{type:"string"}}
# Metric network: auto (Inception if its weights are at hand, else the evaluator), inception, evaluator, none.
METRICS = "auto"  # @param ["auto", "inception", "evaluator", "none"]
'''

PLAN = '''
# The plan of what the next cell runs (run_all.py --plan: nothing is trained): every run's
# FLOPs, its memory at the thesis batch and whether it fits, and its hours on this runtime's
# accelerator (a T4, A100 or H100 at a stated share of its data-sheet peak; a CPU at its
# measured rate). plan.md in the output folder has every figure and how it was obtained.
from experiments.notebook import show_plan
PLAN = show_plan({tables!r}, profile=PROFILE or SUGGESTED_PROFILE, dataset=DATASET, out=OUT,
                 data_dir=DATA_DIR, seeds=SEEDS, only=FAMILIES, metrics=METRICS)
'''

RUN = '''
# Train and score every selected run (complete runs are skipped, interrupted ones resume).
from experiments.notebook import run_experiment
OUT = run_experiment({tables!r}, profile=PROFILE or SUGGESTED_PROFILE, dataset=DATASET,
                     out=OUT, data_dir=DATA_DIR, seeds=SEEDS, only=FAMILIES, metrics=METRICS)
'''

COMPARE_LOSSES = '''
# The table (ours beside the thesis's), then per family its losses side by side: samples of
# the same latent draws, overlaid training curves, metric bars with error bars across seeds.
from experiments import compare
report = compare.load_report(OUT, tables={tables!r}, also={also!r})
compare.show(report)
'''

COMPARE_THESIS_003 = '''
# The face GAN's table (FID/KID, control-grid diversity in pixels and in the metric network's
# features), the curves of every run, each run's control grid over training and its
# diversity, then the bilinear game's contraction factors and squared norms.
from experiments import thesis_003
report = thesis_003.load_report(OUT)
thesis_003.show(report)
'''


@dataclasses.dataclass(frozen=True)
class ReportKind:
    """How a kind of experiment's notebook selects its runs and shows its results."""
    selection_help: str  # the comment above the FAMILIES parameter
    compare: str         # the comparison cell, formatted with tables= and also=


REPORTS = {
    "losses": ReportKind(
        selection_help="# Families or rows, family[/loss][@latent] separated by spaces "
                       "(vae, gan/hinge, vae@128); empty: all.",
        compare=COMPARE_LOSSES),
    "thesis_003": ReportKind(
        selection_help="# Experiments separated by spaces: faces/faithful, faces/fixed, "
                       "faces/optimizers (faces: all three), bilinear.",
        compare=COMPARE_THESIS_003),
}


def notebook(experiment: Experiment, repository: str = GITHUB_REPOSITORY) -> dict:
    """The notebook of ``experiment`` as nbformat 4 JSON (no outputs)."""
    tables = list(experiment.tables)
    kind = REPORTS[experiment.report]
    cells = [
        _cell("intro", "markdown",
              INTRO.format(title=experiment.title, summary=experiment.summary)),
        _cell("setup", "code", SETUP.format(repo_url=repository_url(repository))),
        _cell("check", "code", CHECK),
        _cell("parameters", "code",
              PARAMETERS.format(dataset=experiment.dataset, selection=experiment.selection,
                                selection_help=kind.selection_help),
              tags=["parameters"]),
        _cell("plan", "code", PLAN.format(tables=tables)),
        _cell("run", "code", RUN.format(tables=tables)),
        _cell("compare", "code",
              kind.compare.format(tables=tables, also=list(experiment.compare_with))),
    ]
    return {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"accelerator": "GPU", "colab": {"provenance": []},
                         "kernelspec": {"display_name": "Python 3", "language": "python",
                                        "name": "python3"},
                         "language_info": {"name": "python"}}}


def readme_section(repository: str = GITHUB_REPOSITORY, branch: str = GITHUB_BRANCH) -> str:
    """The README's list of notebooks, with "Open in Colab" badges once ``repository`` is set."""
    lines = [README_BEGIN, "", "| notebook | what it runs | Colab |", "|---|---|---|"]
    for exp in EXPERIMENTS:
        colab = (f"[![Open In Colab]({COLAB_BADGE})]({colab_url(repository, branch, exp.name)})"
                 if repository else "not published yet (see below)")
        lines.append(f"| [`notebooks/{exp.name}.ipynb`](notebooks/{exp.name}.ipynb) | "
                     f"{exp.title} | {colab} |")
    lines += ["", _badge_note(repository), "", README_END]
    return "\n".join(lines)


def _badge_note(repository: str) -> str:
    if repository:
        return (f"The badges open the notebooks of `{repository}` (branch `{GITHUB_BRANCH}`), "
                f"set in `notebooks/make_notebooks.py` (`GITHUB_REPOSITORY`, `GITHUB_BRANCH`).")
    return ("The suite's public address is not known yet, so there are no Colab badges: when "
            "it is published, set `GITHUB_REPOSITORY` (\"owner/name\") and `GITHUB_BRANCH` in "
            "`notebooks/make_notebooks.py` and run `python notebooks/make_notebooks.py`; it "
            "writes the badges here and the repository URL into the notebooks' set-up cell.")


def render(repository: str = GITHUB_REPOSITORY) -> dict:
    """path -> text of every notebook this script writes."""
    return {os.path.join(HERE, f"{exp.name}.ipynb"):
            json.dumps(notebook(exp, repository), indent=1, ensure_ascii=False) + "\n"
            for exp in EXPERIMENTS}


def readme_with_section(text: str, section: str) -> str:
    """``text`` (the README) with the part between the markers replaced by ``section``."""
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{README} lacks the markers {README_BEGIN!r} ... {README_END!r}")
    return text[:start] + section + text[end + len(README_END):]


def expected_files() -> dict:
    """path -> text of everything this script writes (the notebooks and the README)."""
    return {**render(), README: readme_with_section(_read(README), readme_section())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a stored file differs")
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    from common.files import write_text

    stale = []
    for path, text in expected_files().items():
        if _read(path) == text:
            continue
        stale.append(path)
        if not args.check:
            write_text(path, text)
            print("wrote", path)
    if args.check and stale:
        print("stale (run python notebooks/make_notebooks.py):", *stale, file=sys.stderr)
        return 1
    return 0


def _read(path) -> str:
    """The file's text, "" when it does not exist."""
    if not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8") as f:
        return f.read()


if __name__ == "__main__":
    sys.exit(main())
