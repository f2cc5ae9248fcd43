"""Writes the Colab notebooks, one per experiment (run it after changing this file).

    python notebooks/make_notebooks.py
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))

EXPERIMENTS = {
    "table_3_1": ("Thesis 004, Experiment 1 (Table 3.1)",
                  "Each family with its baseline loss: VAE/ELBO, StyleGAN2/Wasserstein-GP, "
                  "Stable Diffusion/MSE, DALL-E/cross-entropy, on CIFAR-100."),
    "table_3_2": ("Thesis 004, Experiment 2 (Table 3.2)",
                  "Two alternative losses per family: VAE MI/WAE, StyleGAN2 hinge/LSGAN, "
                  "Stable Diffusion MAE/Huber, DALL-E MSE/perceptual, on CIFAR-100."),
}


def _cell(kind, source):
    cell = {"cell_type": kind, "metadata": {}, "source": source.strip("\n").splitlines(True)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def notebook(table, title, summary):
    cells = [
        _cell("markdown", f"""
# {title}

{summary}

Runtime > Change runtime type: a GPU (or TPU) for the `paper` profile; the `quick` profile
runs on a CPU in minutes per run. Runs resume from their last checkpoint if the runtime is
recycled: keep `OUT` on Google Drive to survive that.
"""),
        _cell("code", """
# Get the suite (set REPO to where you cloned it from) and its pinned requirements.
REPO = "https://github.com/YOUR-ORG/genbench.git"
import os
if not os.path.exists("genbench"):
    !git clone -q $REPO genbench
%cd genbench
!pip install -q -r requirements.txt
"""),
        _cell("code", f"""
PROFILE = "paper"   # "quick" on a CPU runtime, "smoke" to check the set-up in a minute
DATASET = "cifar100"
OUT = f"reports/{{PROFILE}}/{{DATASET}}"   # e.g. "/content/drive/MyDrive/genbench" to keep runs
!python run_all.py --tables {table} --profile $PROFILE --dataset $DATASET --out $OUT
"""),
        _cell("code", f"""
from IPython.display import Markdown, Image, display
display(Markdown(open(f"{{OUT}}/{table}.md").read()))
import glob
for path in sorted(glob.glob(f"{{OUT}}/runs/*/samples.png")):
    print(path); display(Image(path))
"""),
    ]
    return {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"accelerator": "GPU", "colab": {"provenance": []},
                         "kernelspec": {"display_name": "Python 3", "name": "python3"},
                         "language_info": {"name": "python"}}}


def main():
    for table, (title, summary) in EXPERIMENTS.items():
        path = os.path.join(HERE, f"{table}.ipynb")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(notebook(table, title, summary), f, indent=1)
            f.write("\n")
        print("wrote", path)


if __name__ == "__main__":
    main()
