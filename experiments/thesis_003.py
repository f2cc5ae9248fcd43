"""Thesis 003's experiments: the CelebA face GAN (faithful, fixed, an optimiser comparison)
and the bilinear game. ``run_all.py`` selects them with ``--only``:

    faces             every face run below
    faces/faithful    the listing as written (batch 2, RMSprop, [0, 1] data vs tanh, ...)
    faces/fixed       the same networks trained as the thesis advises (Adam, NS loss, EMA)
    faces/optimizers  fixed mode with RMSprop, Adam and ExtraAdam: same iterations and seeds
    bilinear          min_theta max_phi theta*phi under five methods (experiments/bilinear.py)

Face runs use 64x64 RGB images of ``--dataset`` (default CelebA; grey data is repeated to
three channels) and land in ``OUT/runs/faces-<mode>[+<optimizer>]-b<batch>-z32-s<seed>/``
with a control-grid timeline (``control/``: the listing's fixed latents rendered during
training, and their diversity over time); the reports ``thesis_003_faces.{md,csv,json}``,
``thesis_003_curves.png`` and ``bilinear.{md,csv,json,png}`` land in OUT beside the thesis
004 tables.
"""
from __future__ import annotations

import dataclasses
import os
import typing

import keras
import numpy as np

from experiments import bilinear, summary
from experiments.runner import plan_run
from experiments.tables import Row, SelectorError
from models.faces.config import mode_overrides
from common import files as artifacts
from common import figures
from common.run_record import RunConfig

NAMES = ("faces", "bilinear")
DEFAULT_DATASET = "celeb_a"
IMAGE_SIZE = 64
THESIS_TRAIN_IMAGES = 10_000   # the thesis's text (its listing sets IMAGES_COUNT = 100)
THESIS_HOURS = 26.0            # reported for 15,000 iterations "on an ordinary PC"
#: thesis batch per mode (faithful: the listing's 2; fixed: a real batch, DCGAN's 64)
THESIS_BATCH = {"faithful": 2, "fixed": 64}
#: (mode, optimizer or None = the mode's own) per selection
SELECTIONS = {
    "faithful": [("faithful", None)],
    "fixed": [("fixed", None)],
    "optimizers": [("fixed", "rmsprop"), ("fixed", None), ("fixed", "extra_adam")],
}
MODEL = "Face GAN (thesis 003)"


def split_selectors(only):
    """(thesis 004 selectors or None for all, thesis 003 selections) from ``--only``."""
    if only is None:
        return None, ["faces", "bilinear"]
    ours = [s for s in only if s.split("/", 1)[0].split("@", 1)[0] in NAMES]
    return [s for s in only if s not in ours], ours


def face_runs(selections) -> list:
    """The (mode, optimizer) pairs selected, in a fixed order, without repeats."""
    runs = []
    for text in selections:
        name, _, sub = text.partition("/")
        if name != "faces":
            continue
        if sub and sub not in SELECTIONS:
            raise SelectorError(f"unknown face GAN mode {sub!r} in --only {text}; known: "
                                f"{', '.join(f'faces/{k}' for k in SELECTIONS)}")
        for key in ([sub] if sub else list(SELECTIONS)):
            runs += [r for r in SELECTIONS[key] if r not in runs]
    return runs


def wants_bilinear(selections) -> bool:
    for text in selections:
        if text.startswith("bilinear") and text != "bilinear":
            raise SelectorError(f"bad selector {text!r}: the bilinear game is selected as "
                                f"'bilinear' (step sizes: --bilinear-eta)")
    return "bilinear" in selections


def plan_faces(runs, profile, *, dataset, out_dir, seeds, optimizer=None, max_steps=None):
    """RunPlans of the face runs; a run with another optimiser than its mode's gets
    ``+<optimizer>`` in its folder name. Config errors (an unknown optimiser) raise here.
    ``max_steps``: a rehearsal (``runner.plan_run``)."""
    plans = []
    for mode, opt in runs:
        opt = opt or optimizer
        overrides = mode_overrides(mode)
        if opt:
            overrides["optimizer"] = opt
        row = Row(table="thesis_003", family="faces", model=MODEL, loss=mode,
                  batch_size=THESIS_BATCH[mode], latent_size=32, in_thesis=mode == "faithful")
        for seed in range(seeds):
            plan = plan_run(row, seed, profile, dataset=dataset, image_size=IMAGE_SIZE,
                            out_dir=out_dir, overrides=overrides, max_steps=max_steps)
            if opt and opt != mode_overrides(mode).get("optimizer", "rmsprop"):
                name = os.path.basename(plan.run_dir).replace(f"faces-{mode}-",
                                                              f"faces-{mode}+{opt}-", 1)
                plan = dataclasses.replace(plan, run_dir=os.path.join(out_dir, "runs", name))
            plans.append(plan)
    return plans


def train_limit(profile):
    return min(THESIS_TRAIN_IMAGES, profile.train_limit or THESIS_TRAIN_IMAGES)


# --------------------------------------------------------------- control grid
#: What diversity.csv / diversity.png say when no feature network measured (--metrics none).
PIXELS_ONLY = ("not measured: no metric network (--metrics none), so the control grid's "
               "diversity is measured in pixel space only")


def pairwise_rms(rows) -> float:
    """Mean over pairs i < j of the RMS difference of rows i and j (each image or feature
    vector flattened; the RMS is over its elements, so the figure does not grow with their
    number): 0 when every row is the same (mode collapse)."""
    x = np.asarray(rows, np.float64).reshape(len(rows), -1)
    # differences taken directly (not from a Gram matrix): identical rows give exactly 0
    distances = [np.sqrt(np.mean((x[i + 1:] - x[i]) ** 2, axis=1)) for i in range(len(x) - 1)]
    return float(np.mean(np.concatenate(distances))) if distances else 0.0


@dataclasses.dataclass(frozen=True)
class FeatureSpace:
    """A feature space the control grid's diversity is also measured in: ``fn`` maps
    images [n, H, W, C] in [-1, 1] to features [n, d]; ``label`` names the network."""
    label: str
    fn: typing.Callable

    @classmethod
    def of(cls, network) -> "FeatureSpace":
        """The features of a ``metrics.FeatureNetwork`` (the run's metric network)."""
        import tensorflow as tf

        return cls(network.label,
                   lambda images: network.fn(tf.convert_to_tensor(images, tf.float32))[0])

    def diversity(self, images) -> float:
        """:func:`pairwise_rms` of the images' features."""
        return pairwise_rms(np.asarray(self.fn(np.asarray(images, np.float32))))


class ControlTimeline(keras.callbacks.Callback):
    """Every ``every`` steps: the control latents' grid (``control/step_XXXXXX.png``, as the
    listing saves ``generated_N.png``) and their diversity (``control/diversity.csv``: mean
    pairwise RMS distance in pixels and, given ``features`` (a FeatureSpace: the run's
    metric network), in its feature space, each beside the same figure for real images).
    At the end, ``control_timeline.png`` (grids over time) and ``diversity.png``. Rows
    after the checkpoint a run resumes from are dropped, so a resumed run's files match."""

    def __init__(self, run_dir, every, real_images, features: FeatureSpace | None = None):
        super().__init__()
        self.folder = os.path.join(run_dir, "control")
        self.run_dir, self.every = run_dir, max(1, int(every))
        self.features = features
        self.real = {"real_diversity": pairwise_rms(real_images),
                     "real_feature_diversity": (features.diversity(real_images)
                                                if features else None),
                     "feature_network": features.label if features else PIXELS_ONLY}

    def on_train_begin(self, logs=None):
        path = os.path.join(self.folder, "diversity.csv")
        start = int(self.model.step_counter.numpy())
        self.rows = [r for r in (artifacts.read_csv(path) if os.path.exists(path) else [])
                     if int(r["step"]) <= start]
        if start == 0:
            self._render(0)

    def on_train_batch_end(self, step, logs=None):
        if step % self.every == 0:
            self._render(step)

    def _render(self, step):
        images = np.asarray(self.model.generate(self.model.control_latents()))
        side = int(round(len(images) ** 0.5))
        grid = artifacts.image_grid(artifacts.to_uint8(images), side)
        artifacts.write_png(os.path.join(self.folder, f"step_{step:06d}.png"), grid)
        self.rows = [r for r in self.rows if int(r["step"]) != step]
        self.rows.append({"step": step, "control_diversity": pairwise_rms(images),
                          "control_feature_diversity": (self.features.diversity(images)
                                                        if self.features else None),
                          **self.real})
        artifacts.write_csv(os.path.join(self.folder, "diversity.csv"), self.rows,
                            DIVERSITY_COLUMNS, exact=True)

    def on_train_end(self, logs=None):
        steps = [int(r["step"]) for r in self.rows]
        if steps:
            self._write_timeline(steps)
            write_diversity_figure(os.path.join(self.run_dir, "diversity.png"), self.rows)

    def _write_timeline(self, steps):
        """control_timeline.png: up to 8 of the rendered grids, evenly spaced in time."""
        picks = sorted({steps[int(round(k))] for k in np.linspace(0, len(steps) - 1, 8)})
        plt = figures.pyplot()
        fig, axes = plt.subplots(1, len(picks), figsize=(2.2 * len(picks), 2.6), squeeze=False)
        from PIL import Image
        for ax, step in zip(axes[0], picks):
            with Image.open(os.path.join(self.folder, f"step_{step:06d}.png")) as image:
                ax.imshow(np.asarray(image), cmap="gray" if image.mode == "L" else None)
            ax.set_title(f"step {step}")
            ax.axis("off")
        figures.save_figure(plt, fig, os.path.join(self.run_dir, "control_timeline.png"),
                               "control latents over training")


#: (control grid's column, real images' column, summary ratio) per space: pixels, features
DIVERSITY_SPACES = (("control_diversity", "real_diversity", "collapse_ratio_last"),
                    ("control_feature_diversity", "real_feature_diversity",
                     "feature_collapse_ratio_last"))
DIVERSITY_COLUMNS = ["step", "control_diversity", "real_diversity", "control_feature_diversity",
                     "real_feature_diversity", "feature_network"]


def _floats(rows, key) -> list:
    """(step, value) of the rows whose ``key`` holds a number (empty cells left out)."""
    out = []
    for row in rows:
        try:
            out.append((int(row["step"]), float(row[key])))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def write_diversity_figure(path, rows):
    """diversity.png: the control grid's diversity over training in pixel space and in the
    metric network's feature space, each beside real images' (the dashed line); the
    feature panel says so when no network measured it."""
    from matplotlib.ticker import MaxNLocator

    plt = figures.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    titles = ("pixels ([-1, 1])", f"features: {rows[-1].get('feature_network') or PIXELS_ONLY}")
    for ax, (key, real_key, _), title in zip(axes, DIVERSITY_SPACES, titles):
        points, real = _floats(rows, key), _floats(rows, real_key)
        ax.set_title(_wrap(title), fontsize=8)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("mean pairwise RMS distance")
        if not points:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
            continue
        ax.plot(*zip(*points), "-o", markersize=3, label="control grid")
        ax.axhline(real[-1][1], color="k", ls="--", label="real images")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    figures.save_figure(plt, fig, path, "diversity of the control grid (0 = collapse)")


def _wrap(text, width=70) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def diversity_summary(run_dir) -> dict:
    """First/last/min control diversity (pixels, and features where measured), the real
    images' figures and the last one's ratio to real, from control/diversity.csv."""
    path = os.path.join(run_dir, "control", "diversity.csv")
    rows = artifacts.read_csv(path) if os.path.exists(path) else []
    if not rows:
        return {}
    out = {"feature_network": rows[-1].get("feature_network") or PIXELS_ONLY}
    for key, real_key, ratio in DIVERSITY_SPACES:
        values, real = [v for _, v in _floats(rows, key)], _floats(rows, real_key)
        if values and real:
            out.update({f"{key}_first": values[0], f"{key}_last": values[-1],
                        f"{key}_min": min(values), real_key: real[-1][1],
                        ratio: values[-1] / max(real[-1][1], 1e-12)})
    return out


# ------------------------------------------------------------------- reports
COLUMNS = ["run", "mode", "optimizer", "batch_size", "seed", "iterations", "gradient_evals",
           "fid", "kid", "precision", "recall", "train_loss", "val_loss",
           "control_diversity_first", "control_diversity_last", "real_diversity",
           "collapse_ratio_last", "control_feature_diversity_first",
           "control_feature_diversity_last", "real_feature_diversity",
           "feature_collapse_ratio_last", "feature_network", "metric_network", "n_samples",
           "train_seconds",
           "seconds_per_iteration", "projected_hours_15000", "thesis_hours_15000", "train_data"]


def report_line(plan, metrics) -> dict:
    """The face table's line of a run: ``metrics`` is its metrics.json record."""
    cfg = plan.family_config
    steps = metrics.steps or 0
    per_iter = metrics.train_seconds / steps if steps and metrics.train_seconds else None
    evals = 2 if cfg.optimizer.startswith("extra_") else 1
    record = RunConfig.read(plan.run_dir)
    return {"run": plan.name, "mode": cfg.loss, "optimizer": cfg.optimizer,
            "batch_size": cfg.batch_size, "seed": plan.seed, "iterations": steps,
            "gradient_evals": steps * evals,
            **{k: metrics.get(k) for k in ("fid", "kid", "precision", "recall", "train_loss",
                                           "val_loss", "metric_network", "n_samples",
                                           "train_seconds")},
            **diversity_summary(plan.run_dir),
            "seconds_per_iteration": per_iter,
            "projected_hours_15000": per_iter * 15000 / 3600 if per_iter else None,
            "thesis_hours_15000": THESIS_HOURS if cfg.loss == "faithful" else None,
            "train_data": record.train_data}


def _fmt(value):
    if value is None:
        return "not computed"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_face_reports(out_dir, lines, context, stand_in_note=""):
    base = os.path.join(out_dir, "thesis_003_faces")
    artifacts.write_csv(base + ".csv", lines, COLUMNS)
    artifacts.write_json(base + ".json", {"experiment": "thesis_003_faces", "context": context,
                                          "note": stand_in_note, "rows": lines})
    fd, _, kid = summary.metric_names(lines)
    head = ["run", "mode", "optimizer", "batch", "iterations (grad. evals)", fd, kid,
            "precision", "recall", "G loss", "D loss", "control diversity first -> last (real)",
            "in features first -> last (real)", "s/iteration", "projected h for 15,000 (thesis: 26 h)"]
    out = ["# Thesis 003: the face GAN", "", context, ""]
    if stand_in_note:
        out += [f"**{stand_in_note}**", ""]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for line in lines:
        out.append("| " + " | ".join([
            line["run"], line["mode"], line["optimizer"], str(line["batch_size"]),
            f"{line['iterations']} ({line['gradient_evals']})", _fmt(line["fid"]),
            _fmt(line["kid"]), _fmt(line["precision"]), _fmt(line["recall"]),
            _fmt(line["train_loss"]), _fmt(line["val_loss"]),
            *(_diversity_cell(line, key, real_key) for key, real_key, _ in DIVERSITY_SPACES),
            _fmt(line["seconds_per_iteration"]), _fmt(line["projected_hours_15000"])]) + " |")
    networks = sorted({line.get("feature_network") or PIXELS_ONLY for line in lines})
    out += ["", "Control diversity: mean pairwise RMS distance of the control grid's images "
            "(pixels in [-1, 1]) and of their features in the run's metric network "
            f"({'; '.join(networks)}), beside the same for real images; 0 means every "
            "control image is the same (the thesis's \"late images nearly identical\"). "
            "gradient evals: extragradient takes two gradients per iteration. "
            f"{fd}/{kid}/precision/recall: the run's metric network "
            f"({'; '.join(sorted({str(line.get('metric_network')) for line in lines}))}) "
            "on its samples.npz.", ""]
    artifacts.write_text(base + ".md", "\n".join(out))
    _write_curves(base.replace("thesis_003_faces", "thesis_003_curves.png"), lines, out_dir)


def _diversity_cell(line, key, real_key) -> str:
    """'first -> last (real)' of one diversity space, or 'not measured'."""
    if line.get(f"{key}_last") is None:
        return "not measured"
    return (f"{_fmt(line.get(f'{key}_first'))} -> {_fmt(line.get(f'{key}_last'))} "
            f"({_fmt(line.get(real_key))})")


def _write_curves(path, lines, out_dir):
    """thesis_003_curves.png: G loss, D loss and the control grid's diversity (pixels,
    features) of every face run."""
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(20, 3.6))
    for line in lines:
        run_dir = os.path.join(out_dir, "runs", line["run"])
        history = artifacts.read_csv(os.path.join(run_dir, "history.csv"))
        epochs = [int(r["epoch"]) for r in history]
        label = f"{line['mode']} / {line['optimizer']}"
        axes[0].plot(epochs, [float(r["g_loss"]) for r in history], "-o", ms=3, label=label)
        axes[1].plot(epochs, [float(r["d_loss"]) for r in history], "-o", ms=3, label=label)
        div = os.path.join(run_dir, "control", "diversity.csv")
        rows = artifacts.read_csv(div) if os.path.exists(div) else []
        for ax, (key, _, _) in zip(axes[2:], DIVERSITY_SPACES):
            points = _floats(rows, key)
            if points:
                ax.plot(*zip(*points), "-", label=label)
    titles = ("G loss", "D loss", "control diversity (pixels)",
              "control diversity (metric network features)")
    for ax, title, xlabel in zip(axes, titles, ("epoch", "epoch", "step", "step")):
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figures.save_figure(plt, fig, path, "thesis 003 face GAN: modes and optimisers")


def stand_in_note(dataset) -> str:
    if dataset == DEFAULT_DATASET:
        return ""
    return (f"Offline stand-in: these runs trained on {dataset} at 64x64 (grey data repeated to RGB), "
            f"not on CelebA; they test the pipeline and compare the recipes, they are not faces.")


def run_bilinear(out_dir, profile_name, etas, context):
    result = bilinear.run(bilinear.config_for(profile_name, etas))
    bilinear.write_reports(out_dir, result, context)
    return result


# ------------------------------------------------- the report, shown in a notebook
#: the experiment-wide reports in OUT, in the order they are shown (each face run's figures
#: after the curves)
REPORT_FILES = ("thesis_003_faces.md", "thesis_003_curves.png", "bilinear.md", "bilinear.png")
#: (file in a face run's folder, its caption)
RUN_FIGURES = (("control_timeline.png", "control grid over training"),
               ("diversity.png", "control grid diversity, pixels and features"))


@dataclasses.dataclass
class Report:
    """What run_all.py wrote for thesis 003 into ``out_dir``: ``parts`` is a list of
    (kind, content) in display order, kind "markdown" (text) or "image" (a PNG's path)."""
    out_dir: str
    parts: list


def load_report(out_dir) -> Report:
    """The thesis 003 reports in ``out_dir`` (the face GAN's table and curves, then per face
    run its control-grid timeline and diversity, then the bilinear game's table and figure),
    whichever of them the selection wrote; compare.ReportError when there are none."""
    from experiments.compare import ReportError, with_heading_level

    out_dir = os.fspath(out_dir)
    parts = []
    for name in REPORT_FILES:
        path = os.path.join(out_dir, name)
        if not os.path.exists(path):
            continue
        if name.endswith(".md"):
            with open(path, encoding="utf-8") as f:
                parts.append(("markdown", with_heading_level(f.read(), 2)))
        else:
            parts.append(("image", path))
        if name == "thesis_003_curves.png":
            parts += _run_parts(out_dir)
    if not parts:
        raise ReportError(f"{out_dir} holds no thesis 003 reports (thesis_003_faces.md, "
                          f"bilinear.md); run run_all.py --only faces bilinear --out "
                          f"{out_dir} first")
    return Report(out_dir=out_dir, parts=parts)


def _run_parts(out_dir) -> list:
    """A heading and the figures of each face run listed in thesis_003_faces.json."""
    path = os.path.join(out_dir, "thesis_003_faces.json")
    rows = artifacts.read_json(path).get("rows", []) if os.path.exists(path) else []
    parts = []
    for row in rows:
        run_dir = os.path.join(out_dir, "runs", row["run"])
        figures = [(os.path.join(run_dir, name), caption) for name, caption in RUN_FIGURES
                   if os.path.exists(os.path.join(run_dir, name))]
        if figures:
            captions = ", ".join(caption for _, caption in figures)
            parts.append(("markdown", f"### {row['run']}: {captions}\n"))
            parts += [("image", figure) for figure, _ in figures]
    return parts


def show(report: Report):
    """Display the report inline in a notebook, in order: tables as Markdown, figures as PNG."""
    from IPython.display import Image, Markdown, display

    for kind, content in report.parts:
        display(Markdown(content) if kind == "markdown" else Image(filename=content))
