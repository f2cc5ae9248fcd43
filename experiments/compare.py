"""The losses of each family side by side: tables, sample grids, loss curves, metric bars.

One module draws every comparison, for the report folder's ``README.md`` (written by
``run_all.py``, see :func:`write_readme`) and for the notebooks (inline, :func:`show`):

    from experiments import compare
    report = compare.load_report("reports/quick/fashion_mnist")
    compare.show(report)                  # in a notebook
    compare.write_readme(report)          # README.md + figures/*.png in that folder

or, to redraw a folder's README.md without running anything:

    python -m experiments.compare reports/quick/fashion_mnist

It reads only what ``run_all.py`` wrote: each experiment's ``<table>.json`` and ``.md`` (the
rows, aggregated over seeds, with the thesis's numbers and footnote) and the run folders
``runs/<family>-<loss>-b<batch>-z<latent>-s<seed>/`` (``metrics.json``, ``config.json``,
``history.csv``, ``samples.npz`` or, without it, ``samples.png``). Per family it draws

- ``samples``: the generated images of every loss, one panel per (loss, latent size), from
  runs of the same seed. A family's sampler draws its latents from (run seed, sample index)
  only (``models/*/model.py: sample_latents``), so at one seed and latent size every loss
  decodes the same latent vectors: the grids compare cell by cell.
- ``curves``: the losses' training curves overlaid (train solid, validation dashed), a row
  per latent size: the objective each loss optimises and, where the family records one for
  every loss, a quantity on a shared scale (:data:`CURVE_PANELS`, e.g. the VAE's per-pixel
  MSE, the scale of the thesis's numbers). Several seeds: their mean, with a band of one
  standard deviation.
- ``metrics``: FID, IS and KID per loss as bars (the seed mean), with error bars of the
  95% confidence interval of that mean (t-based, from the runs' per-seed values), drawn
  only where a row has two seeds or more: a single run's split spread is not a seed spread.

Below each family's figures, its "Differences" table says which losses differ by more
than seed noise (``experiments/significance.py``: Welch's t-test on the per-seed values
of every pair of losses), and the README's "The thesis's claims, one by one" checks
thesis 004's qualitative findings against the runs (``experiments/claims.py``). Where the
folder holds ``second_opinion.csv`` and ``calibration.csv`` (written by ``python -m metrics
second-opinion`` and ``calibrate``), the README adds a second evaluator's view of every
row and what each metric makes of damaged real images (``experiments/evidence.py``).

Figures are matplotlib ``Figure`` objects (no pyplot state, no GUI backend), saved as PNG
through ``training.artifacts.atomic_path``: each file whole or not at all.
"""
from __future__ import annotations

import dataclasses
import io
import os
import re

import numpy as np

from common import files as artifacts
from common.config import overrides_label
from common.run_record import RunConfig, RunMetrics
from experiments import claims, evidence, significance

#: The curve panels of a family: (train key, validation key, what it is) of ``history.csv``,
#: ``OBJECTIVE`` standing for the run's own objective (metrics.json's train/val loss keys).
#: Beside the objective, which each loss has on its own scale, a family shows a quantity
#: that every one of its losses records on one scale, so their curves can share an axis;
#: the GAN, whose losses are different games, shows G's and D's losses (the thesis's
#: "training" and "validation" loss). Other families: the objective only.
OBJECTIVE = None
CURVE_PANELS = {
    "vae": [OBJECTIVE, ("mse", "val_mse",
                        "per-pixel MSE of the reconstruction (the thesis's scale)")],
    "diffusion": [OBJECTIVE, ("eps_mse", "val_eps_mse",
                              "per-element MSE of the predicted noise (thesis eq. 2.13)")],
    "autoregressive": [OBJECTIVE, ("nll", "val_nll", "next-token cross-entropy (nats)")],
    "gan": [("g_loss", "val_g_loss", "generator loss (the thesis's training loss)"),
            ("d_loss", "val_d_loss", "discriminator loss (the thesis's validation loss)")],
}
#: metric key -> its name in a figure, per kind of metric network
METRIC_LABELS = {
    "inception": {"fid": "FID", "is": "IS", "kid": "KID"},
    "evaluator": {"fid": "FD (evaluator features)", "is": "IS (evaluator)",
                  "kid": "KID (evaluator features)"},
}
FIGURE_KINDS = ("samples", "curves", "metrics")
GLANCE = "glance"  # README's key of the one-panel-per-family figure (no family has this name)
GRID_IMAGES, GRID_COLUMNS = 64, 8
_RUN_NAME = re.compile(r"^(?P<prefix>.+)-s(?P<seed>[0-9]+)$")


class ReportError(ValueError):
    """A report folder that cannot be compared (missing, no tables): one line saying why."""


@dataclasses.dataclass
class Run:
    """One finished run folder of a table row."""
    name: str
    run_dir: str
    seed: int
    metrics: RunMetrics
    history: list

    def generated(self, n: int | None = GRID_IMAGES):
        """The first ``n`` generated images (uint8 [n, H, W, C]) from samples.npz (all of
        them for None), or None without the file."""
        path = os.path.join(self.run_dir, "samples.npz")
        if not os.path.exists(path):
            return None
        with np.load(path) as data:
            return data["images"][:n]


@dataclasses.dataclass
class Line:
    """A table row (a dict as in ``<table>.json``) and the runs (seeds) it aggregates."""
    row: dict
    runs: list

    @property
    def family(self) -> str:
        return self.row["family"]

    @property
    def label(self) -> str:
        return f"{self.row['loss']}, latent {self.row['latent_size']}"


@dataclasses.dataclass
class TableReport:
    """One experiment's table as run_all.py wrote it."""
    name: str
    title: str
    markdown: str
    lines: list


@dataclasses.dataclass
class Report:
    """Everything compared in one report folder (one profile and dataset)."""
    out_dir: str
    profile: str
    dataset: str
    tables: list

    def families(self) -> dict:
        """family -> its lines across all tables, in table order (baseline losses first);
        lines of runs trained with ``run_all.py --set`` overrides or in half precision
        are in the tables only (the figures compare the losses under the profile's presets,
        one precision: float32, or the only one the folder has)."""
        found = {}
        halves = {line.row.get("trained_in") for table in self.tables for line in table.lines}
        shown = None if None in halves or not halves else min(halves)
        for table in self.tables:
            for line in table.lines:
                if not line.row.get("overrides") and line.row.get("trained_in") == shown:
                    found.setdefault(line.family, []).append(line)
        return found

    def subtitle(self, lines) -> str:
        """'profile P, dataset D, seeds S, metric network N' for the figures of ``lines``."""
        seeds = sorted({len(line.runs) for line in lines})
        networks = sorted({network_label(line.row) for line in lines})
        seed_text = "/".join(str(s) for s in seeds) + (" seed" if seeds == [1] else " seeds")
        return (f"profile {self.profile}, dataset {self.dataset}, {seed_text} per row, "
                f"metric network {', '.join(networks)}")


def network_label(row) -> str:
    """The metric network a row was scored by, as its figures name it: the row's
    ``metric_network`` and, where recorded, the start of its weights' SHA-256."""
    digest = row.get("metric_network_sha256")
    name = str(row.get("metric_network"))
    return f"{name} (weights sha256 {digest[:12]})" if digest else name


def load_report(out_dir, tables=None, also=()) -> Report:
    """The tables (``<name>.json`` + ``.md``) of ``out_dir`` and the run folders behind their
    rows. ``tables``: only these experiments (each must be there), plus those of ``also``
    that are (e.g. Table 3.2's notebook shows the baselines of 3.1 beside its losses when
    they ran). ReportError before any drawing when the folder or a named table is missing."""
    out_dir = os.fspath(out_dir)
    if not os.path.isdir(out_dir):
        raise ReportError(f"{out_dir}: no such folder; run run_all.py first (its --out, "
                          f"default reports/<profile>/<dataset>)")
    found = [t for t in (_read_table(out_dir, name) for name in sorted(os.listdir(out_dir)))
             if t is not None]
    if tables is not None:
        missing = sorted(set(tables) - {t.name for t in found})
        if missing:
            raise ReportError(f"{out_dir} has no table {', '.join(missing)} (found: "
                              f"{', '.join(t.name for t in found) or 'none'}); run run_all.py "
                              f"--tables {' '.join(missing)} with --out {out_dir} first")
        found = [t for t in found if t.name in tables or t.name in also]
    if not found:
        raise ReportError(f"{out_dir} holds no experiment tables (<table>.json written by "
                          f"run_all.py); run run_all.py with --out {out_dir} first")
    profile, dataset = _identity(out_dir, found)
    return Report(out_dir=out_dir, profile=profile, dataset=dataset, tables=found)


def _read_table(out_dir, file_name):
    """A TableReport from ``<name>.json`` (+ ``<name>.md``), None for other files."""
    base, ext = os.path.splitext(file_name)
    md_path = os.path.join(out_dir, base + ".md")
    if ext != ".json" or not os.path.exists(md_path):
        return None
    try:
        data = artifacts.read_json(os.path.join(out_dir, file_name))
    except (OSError, ValueError):
        return None
    if not (isinstance(data, dict) and data.get("table") == base
            and isinstance(data.get("rows"), list)):
        return None
    with open(md_path, encoding="utf-8") as f:
        markdown = f.read()
    lines = [Line(row, _runs_of(out_dir, row)) for row in data["rows"]]
    return TableReport(name=base, title=data.get("title", base), markdown=markdown, lines=lines)


def _runs_of(out_dir, row) -> list:
    """The finished runs (any seed) of a table row scored by the row's metric network
    (with the row's ``--set`` overrides, if any: ``runs/<row>-s<seed>+<overrides>``)."""
    runs_dir = os.path.join(out_dir, "runs")
    prefix = f"{row['family']}-{row['loss']}-b{row['batch_size']}-z{row['latent_size']}"
    suffix = overrides_label(row.get("overrides") or {})
    runs = []
    for name in sorted(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else []:
        plain = name[:len(name) - len(suffix)] if name.endswith(suffix) else ""
        match = _RUN_NAME.match(plain)
        if not match or match["prefix"] != prefix:
            continue
        run_dir = os.path.join(runs_dir, name)
        metrics = _read_record(RunMetrics, run_dir)
        if metrics is None or metrics.metric_network != row.get("metric_network"):
            continue
        history_path = os.path.join(run_dir, "history.csv")
        history = artifacts.read_csv(history_path) if os.path.exists(history_path) else []
        runs.append(Run(name, run_dir, int(match["seed"]), metrics, history))
    return sorted(runs, key=lambda run: run.seed)


def _read_record(kind, run_dir):
    """The run's config.json or metrics.json record (``kind``), None when it cannot be read."""
    try:
        return kind.read(run_dir)
    except (OSError, ValueError):  # (NotARecord included)
        return None


def _identity(out_dir, tables):
    """(profile, dataset) recorded by the runs' config.json (the first that says)."""
    for table in tables:
        for line in table.lines:
            for run in line.runs:
                config = _read_record(RunConfig, run.run_dir)
                identity = (config.identity if config is not None else None) or {}
                if identity.get("profile") and identity.get("dataset"):
                    return identity["profile"], identity["dataset"]
    return "unknown", os.path.basename(os.path.abspath(out_dir))


# ------------------------------------------------------------------------------ figures

def _figure(rows: int, columns: int, width: float, height: float):
    from matplotlib.figure import Figure

    # constrained layout leaves room for the (wrapped, multi-line) figure title
    fig = Figure(figsize=(width * columns, height * rows), layout="constrained")
    fig.get_layout_engine().set(h_pad=0.1)  # inches between title, panel titles and panels
    axes = fig.subplots(rows, columns, squeeze=False)
    return fig, axes


def _suptitle(fig, text: str, fontsize: float = 10) -> None:
    """The figure's title, each line wrapped to the figure's width (a one-column figure is
    ~3 inches wide and would otherwise cut a long title off at both ends), then the
    panels are laid out below it by the figure's constrained layout."""
    import textwrap

    # ~0.55 em per character of the default sans-serif font; 72 points per inch
    chars = max(20, int(fig.get_figwidth() * 72 / (0.55 * fontsize)))
    lines = [textwrap.fill(line, chars, break_long_words=False, break_on_hyphens=False)
             for line in text.split("\n")]
    fig.suptitle("\n".join(lines), fontsize=fontsize)


def _model_name(lines) -> str:
    return lines[0].row.get("model") or lines[0].family


def _latents(lines) -> list:
    return sorted({line.row["latent_size"] for line in lines})


def _losses(lines) -> list:
    return list(dict.fromkeys(line.row["loss"] for line in lines))


def _network_kind(label) -> str:
    return "evaluator" if str(label).startswith("evaluator") else "inception"


def samples_figure(report: Report, lines):
    """Panels of generated images, a column per loss and a row per latent size, all from
    runs of one seed (so the same latent draws); None when no run has samples."""
    seed = sample_seed(lines)
    latents, losses = _latents(lines), _losses(lines)
    fig, axes = _figure(len(latents), len(losses), 3.4, 3.7)
    shown = 0
    for line in lines:
        ax = axes[latents.index(line.row["latent_size"])][losses.index(line.row["loss"])]
        run = next((r for r in line.runs if r.seed == seed), None)
        shown += _draw_samples(ax, run, line)
    for ax in axes.ravel():
        ax.axis("off")
    if not shown:
        return None
    _suptitle(fig, f"{_model_name(lines)}: generated samples, one loss per column, seed {seed} "
                   f"(the same latent draws in every panel of a row)\n"
                   f"{report.subtitle(lines)}")
    return fig


def sample_seed(lines) -> int:
    """The seed whose runs the samples figure shows: the lowest that every line ran (so
    every panel decodes the same latent draws), else the lowest of any line."""
    common = set.intersection(*({run.seed for run in line.runs} for line in lines))
    return min(common or {run.seed for line in lines for run in line.runs} or {0})


def _draw_samples(ax, run, line) -> int:
    """One panel: the run's first generated images, or its samples.png without samples.npz."""
    if run is None:
        ax.set_title(f"{line.label}\n(no run of this seed)", fontsize=9)
        return 0
    images = run.generated()
    note = ""
    if images is not None:
        grid = artifacts.image_grid(images, GRID_COLUMNS)
    elif os.path.exists(os.path.join(run.run_dir, "samples.png")):
        from PIL import Image

        with Image.open(os.path.join(run.run_dir, "samples.png")) as image:
            grid = np.asarray(image.convert("RGB"))
        note = "\n(samples.png: generated | real)"
    else:
        ax.set_title(f"{line.label}\n(no samples)", fontsize=9)
        return 0
    gray = grid.shape[-1] == 1
    ax.imshow(grid[..., 0] if gray else grid, cmap="gray" if gray else None,
              interpolation="nearest")
    ax.set_title(line.label + note, fontsize=9)
    return 1


def curves_figure(report: Report, lines):
    """The losses' curves overlaid: a row per latent size, a column per panel of the family
    (:data:`CURVE_PANELS`). None when no run has a history."""
    from matplotlib.ticker import MaxNLocator

    panels = CURVE_PANELS.get(lines[0].family, [OBJECTIVE])
    latents = _latents(lines)
    fig, axes = _figure(len(latents), len(panels), 10.4 / len(panels), 3.6)
    colours = {loss: f"C{i}" for i, loss in enumerate(_losses(lines))}
    drawn = 0
    for line in lines:
        row_axes = axes[latents.index(line.row["latent_size"])]
        for ax, panel in zip(row_axes, panels):
            keys = panel[:2] if panel else _objective_keys(line)
            drawn += _plot_curves(ax, line, keys, colours[line.row["loss"]])
    if not drawn:
        return None
    for z, row_axes in zip(latents, axes):
        for ax, panel in zip(row_axes, panels):
            what = panel[2] if panel else _objective_title(lines[0])
            ax.set_title(f"latent {z}: {what}", fontsize=9)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=7)
    _suptitle(fig, f"{_model_name(lines)}: training curves of its losses (solid: train, "
                   f"dashed: validation)\n{report.subtitle(lines)}")
    return fig


def _objective_keys(line):
    metrics = line.runs[0].metrics if line.runs else {}
    return metrics.get("train_loss_key", "loss"), metrics.get("val_loss_key", "val_loss")


def _objective_title(line) -> str:
    train, val = _objective_keys(line)
    return f"objective {train} / {val}, each loss on its own scale"


def _plot_curves(ax, line, keys, colour) -> int:
    """Mean over seeds of the train (solid) and validation (dashed) curves; a ±1 std band
    with several seeds. Returns how many curves were drawn."""
    drawn = 0
    for key, style in zip(keys, ("-", "--")):
        curves = [_series(run.history, key) for run in line.runs]
        curves = [c for c in curves if c]
        if not curves:
            continue
        epochs = sorted(set.intersection(*(set(c) for c in curves)))
        values = np.array([[c[e] for e in epochs] for c in curves])
        mean = values.mean(axis=0)
        ax.plot(epochs, mean, style, color=colour, marker="o", markersize=2.5,
                label=f"{line.row['loss']}: {key}")
        if len(curves) > 1:
            spread = values.std(axis=0)
            ax.fill_between(epochs, mean - spread, mean + spread, color=colour, alpha=0.15)
        drawn += 1
    return drawn


def _series(history, key) -> dict:
    """epoch -> float value of ``key`` in history.csv rows (missing or empty cells left out)."""
    out = {}
    for row in history:
        try:
            out[int(row["epoch"])] = float(row[key])
        except (KeyError, TypeError, ValueError):
            continue
    return out


def metrics_figure(report: Report, lines):
    """FID, IS and KID per loss as bars of the seed mean (a colour per latent size), with
    the t-based 95% confidence interval of that mean as error bars where a row has two
    seeds or more; None when no metric was computed."""
    network = lines[0].row.get("metric_network")
    scored = [line for line in lines if line.row.get("metric_network") == network]
    keys = [k for k in ("fid", "is", "kid") if any(_number(l.row.get(k)) is not None
                                                   for l in scored)]
    if not keys:
        return None
    labels = METRIC_LABELS[_network_kind(network)]
    losses, latents = _losses(scored), _latents(scored)
    fig, axes = _figure(1, len(keys), 4.2, 3.8)
    width = 0.8 / len(latents)
    seeds = max(len(line.runs) for line in scored) if scored else 0
    bars_label = ("seed mean, bars: 95% CI (t)" if seeds > 1 else "one seed: its score")
    for ax, key in zip(axes[0], keys):
        for j, z in enumerate(latents):
            values, errors = [], []
            for loss in losses:
                line = next((l for l in scored if l.row["loss"] == loss
                             and l.row["latent_size"] == z), None)
                values.append(_number(line.row.get(key)) if line else None)
                errors.append(_seed_interval(line, key) if line else None)
            x = np.arange(len(losses)) + (j - (len(latents) - 1) / 2) * width
            yerr = (None if all(e is None for e in errors)
                    else [np.nan if e is None else e for e in errors])
            ax.bar(x, [np.nan if v is None else v for v in values], width, yerr=yerr,
                   capsize=3, color=f"C{j}", label=f"latent {z}")
        ax.set_xticks(np.arange(len(losses)), losses)
        ax.set_title(labels[key], fontsize=10)
        ax.set_ylabel(bars_label, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    bars = ("error bars: 95% CI of the seed mean, t-based, rows of 2+ seeds" if seeds > 1
            else "one seed per row: no error bars")
    left_out = len(lines) - len(scored)
    extra = f"; {left_out} row(s) scored by another network left out" if left_out else ""
    _suptitle(fig, f"{_model_name(lines)}: metrics per loss ({bars}{extra})\n"
                   f"{report.subtitle(scored)}")
    return fig


def _number(value):
    return value if isinstance(value, (int, float)) and np.isfinite(value) else None


def _seed_interval(line, key):
    """The half-width of the 95% interval of the seed mean of ``key`` (t-based, from the
    line's runs), None with fewer than 2 seeds (a single run's std is over splits or
    subsets, not seeds)."""
    interval = significance.mean_interval(significance.seed_values(line.runs, key))
    return None if interval is None else interval[1]


FIGURES = {"samples": samples_figure, "curves": curves_figure, "metrics": metrics_figure}


#: Sampler settings a panel title names when they are not neutral: field -> (label, neutral).
SAMPLER_LABELS = {"guidance_scale": ("guidance", 1.0), "truncation_psi": ("psi", 1.0),
                  "temperature": ("temperature", 1.0)}


def _sampler_label(metrics) -> str:
    """', guidance 2' for the non-neutral settings in metrics.json's ``sampler``."""
    sampler = metrics.get("sampler") or {}
    return "".join(f", {label} {sampler[field]:g}" for field, (label, neutral)
                   in SAMPLER_LABELS.items()
                   if _number(sampler.get(field)) is not None and sampler[field] != neutral)


def _glance_title(line, run) -> str:
    """'VAE (elbo), latent 128 / fd_eval 6.93, 444 s of training' for one panel (plus
    the sampler's guidance, truncation or temperature where they are not neutral)."""
    metrics = run.metrics if run is not None else {}
    kind = "fd_eval" if _network_kind(line.row.get("metric_network")) == "evaluator" else "FID"
    parts = []
    if _number(metrics.get("fid")) is not None:
        parts.append(f"{kind} {metrics['fid']:.3g}")
    if _number(metrics.get("train_seconds")) is not None:
        # a two-stage row's first stage (shared by its latent size's rows) timed apart
        first = [(name, stage["train_seconds"]) for name, stage in
                 (metrics.get("stages") or {}).items()
                 if _number((stage or {}).get("train_seconds")) is not None]
        parts.append(f"{metrics['train_seconds']:,.0f} s of training"
                     + "".join(f" + {sec:,.0f} s {name}" for name, sec in first))
    return (f"{_model_name([line])} ({line.row['loss']}), latent "
            f"{line.row['latent_size']}{_sampler_label(metrics)}\n"
            f"{', '.join(parts) or 'not scored'}")


def glance_figure(report: Report):
    """One panel per family: the samples of its first row (the baseline loss at the
    smallest latent size of the first table), scored and timed in the panel's title; None
    when no family has samples."""
    chosen = []
    for lines in report.families().values():
        line = min((l for l in lines if l.row["loss"] == lines[0].row["loss"]),
                   key=lambda l: l.row["latent_size"])
        seed = min((run.seed for run in line.runs), default=None)
        chosen.append((line, next((r for r in line.runs if r.seed == seed), None)))
    fig, axes = _figure(1, max(1, len(chosen)), 3.4, 3.9)
    shown = 0
    for ax, (line, run) in zip(axes[0], chosen):
        shown += _draw_samples(ax, run, line)
        if run is not None:
            ax.set_title(_glance_title(line, run), fontsize=9)
    for ax in axes.ravel():
        ax.axis("off")
    if not shown:
        return None
    _suptitle(fig, f"Generated samples of each family's baseline loss (lowest seed): "
                   f"profile {report.profile}, dataset {report.dataset}")
    return fig


def family_figures(report: Report) -> dict:
    """family -> {kind: Figure} for every family of the report (kinds with nothing to draw
    left out)."""
    out = {}
    for family, lines in report.families().items():
        drawn = {kind: FIGURES[kind](report, lines) for kind in FIGURE_KINDS}
        out[family] = {kind: fig for kind, fig in drawn.items() if fig is not None}
    return out


def save_figure(fig, path):
    """``fig`` as a PNG at ``path``, whole or not at all."""
    with artifacts.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def png_bytes(fig) -> bytes:
    """``fig`` rendered as PNG bytes (for inline display, whatever the matplotlib backend)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


# ------------------------------------------------------------------------------ outputs

def table_markdown(table: TableReport, level: int = 2) -> str:
    """The table's markdown (ours beside the thesis's, with its footnote), its title at
    heading ``level``."""
    return with_heading_level(table.markdown, level)


def with_heading_level(markdown: str, level: int) -> str:
    """``markdown`` whose leading '# title' is at heading ``level`` (to sit under a page's
    own title), with one trailing newline."""
    if markdown.startswith("# "):
        markdown = "#" * level + markdown[1:]
    return markdown.rstrip() + "\n"


def readme_text(report: Report, figures: dict) -> str:
    """README.md of a report folder: each experiment's table, then per family its figures
    (``figures``: family -> {kind: path relative to the folder})."""
    out = [f"# Results: profile `{report.profile}`, dataset `{report.dataset}`", "",
           "Written by `run_all.py` from the complete runs in this folder: each family's "
           "baseline samples at a glance, each experiment's table (our numbers beside thesis "
           "004's, with its footnote), then each family's losses side by side. The figures "
           "are drawn by `experiments/compare.py`; the notebooks in `notebooks/` draw the "
           "same ones inline.", ""]
    out += [f"- [{t.title}](#{_anchor(t.title)})" for t in report.tables]
    if claims.applies(report):
        out += [f"- [{claims.HEADING}](#{_anchor(claims.HEADING)})"]
    opinion, calibration = evidence.load(report.out_dir)
    out += [f"- [{heading}](#{_anchor(heading)})" for heading, found in
            ((evidence.SECOND_OPINION_HEADING, opinion), (evidence.CALIBRATION_HEADING,
                                                          calibration)) if found is not None]
    out += ["- [The losses of each family side by side](#the-losses-of-each-family-side-by-side)",
            ""]
    glance = figures.get(GLANCE)
    if glance:
        out += [f"![Each family's baseline samples]({glance})", ""]
    for table in report.tables:
        out += [table_markdown(table, level=2)]
    if claims.applies(report):
        out += [claims.markdown(report, level=2)]
    if opinion is not None:
        out += [evidence.second_opinion_markdown(opinion, level=2)]
    if calibration is not None:
        out += [evidence.calibration_markdown(calibration, level=2)]
    out += ["## The losses of each family side by side", "",
            "Samples: every panel of a row decodes the same latent draws (same seed and "
            "latent size), so cells compare one to one. Curves: solid train, dashed "
            "validation. Bars: the seed mean, with error bars of its 95% confidence interval "
            "(t-based), drawn only for rows with two seeds or more. Differences: "
            f"{DIFFERENCES_INTRO}", ""]
    for family, lines in report.families().items():
        out += [f"### {family_heading(family, lines)}", ""]
        kinds = figures.get(family, {})
        for kind in FIGURE_KINDS:
            if kind in kinds:
                out += [f"![{_model_name(lines)}: {kind}]({kinds[kind]})", ""]
        if "metrics" not in kinds:
            out += ["Metrics were not computed for these runs (`--metrics none`).", ""]
        table = differences_markdown(lines)
        if table:
            out += ["Differences between its losses (a − b):", "", table]
    return "\n".join(out)


DIFFERENCES_INTRO = ("each family's pairs of losses at one latent size, the seed mean of a "
                     "minus that of b (lower is better for both metrics), with the 95% "
                     "confidence interval and p of Welch's t-test on the per-seed values "
                     "(`experiments/significance.py`); a pair with one seed on a side is "
                     "not testable.")


def differences_markdown(lines) -> str:
    """The family's 'Differences' table (``experiments.significance``): its Fréchet metric
    and KID, named as the tables name them; '' when no pair has scores."""
    network = lines[0].row.get("metric_network")
    fd_name = "fd_eval" if _network_kind(network) == "evaluator" else "FID"
    return significance.differences_markdown(significance.family_differences(lines),
                                             {"fid": fd_name, "kid": "KID"})


def family_heading(family, lines) -> str:
    """'VAE (vae): elbo, mi, wae': the model, its family and its losses in the report."""
    return f"{_model_name(lines)} ({family}): {', '.join(_losses(lines))}"


def _anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def write_readme(report: Report) -> str:
    """Write ``figures/<family>-<kind>.png`` and then ``README.md`` into the report folder,
    each file atomically (README last, so it never names a figure not yet written).
    Returns the README's path."""
    paths = {}
    glance = glance_figure(report)
    if glance is not None:
        save_figure(glance, os.path.join(report.out_dir, "figures", "glance.png"))
        paths[GLANCE] = "figures/glance.png"
    for family, figs in family_figures(report).items():
        for kind, fig in figs.items():
            relative = f"figures/{family}-{kind}.png"
            save_figure(fig, os.path.join(report.out_dir, relative))
            paths.setdefault(family, {})[kind] = relative
    path = os.path.join(report.out_dir, "README.md")
    artifacts.write_text(path, readme_text(report, paths))
    return path


def show(report: Report):
    """Display the report inline in a notebook: each family's baseline samples, each
    table, then each family's figures (the README's order)."""
    from IPython.display import Image, Markdown, display

    glance = glance_figure(report)
    if glance is not None:
        display(Image(data=png_bytes(glance)))
    for table in report.tables:
        display(Markdown(table_markdown(table, level=2)))
    if claims.applies(report):
        display(Markdown(claims.markdown(report, level=2)))
    opinion, calibration = evidence.load(report.out_dir)
    if opinion is not None:
        display(Markdown(evidence.second_opinion_markdown(opinion, level=2)))
    if calibration is not None:
        display(Markdown(evidence.calibration_markdown(calibration, level=2)))
    families = report.families()
    for family, figs in family_figures(report).items():
        display(Markdown(f"### {family_heading(family, families[family])}"))
        for kind in FIGURE_KINDS:
            if kind in figs:
                display(Image(data=png_bytes(figs[kind])))
        table = differences_markdown(families[family])
        if table:
            display(Markdown(f"Differences between its losses (a − b): {DIFFERENCES_INTRO}"
                             f"\n\n{table}"))


def main(argv=None) -> int:
    """``python -m experiments.compare OUT``: (re)write OUT/README.md and its figures."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Redraw a report folder's README.md and "
                                                 "figures from its tables and run folders.")
    parser.add_argument("out", help="a folder run_all.py wrote (reports/<profile>/<dataset>)")
    args = parser.parse_args(argv)
    try:
        report = load_report(args.out)
    except ReportError as err:
        print(f"experiments.compare: error: {err}", file=sys.stderr)
        return 2
    print("wrote", write_readme(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
