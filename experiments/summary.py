"""Table reports: our numbers beside the thesis's, for the rows that ran.

Seeds of one row are aggregated as mean and standard deviation over seeds (ddof=0):
every ``*_std`` column is a spread across seeds, empty with one seed. The spreads
within one run (IS over its 10 splits, KID over its subsets) are other quantities
and have their own columns (``is_split_std``, ``kid_subset_std``: means over seeds);
the two never share a cell. Metrics from different networks never share a column:
the ``metric_network`` column names the network (with its weights' digest), and a
row whose seeds disagree on it is an error. Runs trained with ``run_all.py --set``
overrides are lines of their own (``overrides``), marked †N with a footnote; the
``overrides`` column exists only in a table that has such a line.
"""
from __future__ import annotations

import json
import os

import numpy as np

from common import files as artifacts
from common.config import overrides_label, value_text

#: the run-folder mark of a half-precision run (``experiments.runner.PRECISION_MARKS``)
PRECISION_MARKS = {"bfloat16": "-bf16", "float16": "-fp16"}

COLUMNS = ["family", "model", "loss", "batch_size", "latent_size", "seeds",
           "fid", "fid_std", "is", "is_std", "kid", "kid_std", "precision", "recall",
           "train_loss", "train_loss_std", "val_loss", "val_loss_std",
           "train_seconds", "train_seconds_std", "is_split_std", "kid_subset_std",
           "metric_network", "metric_network_sha256", "n_samples", "thesis_batch_size",
           "thesis_fid", "thesis_is", "thesis_train_loss", "thesis_val_loss", "sampler"]

METRIC_KEYS = ("fid", "is", "kid", "precision", "recall")

NOTE = (
    "Thesis values are copied from thesis 004 as printed. Its FIDs (989-1899) and IS = 1.00 in "
    "every row come from broken metric code (pool-3 FIDs of 32x32 data lie between ~3 for real "
    "images and ~300-450 for noise; IS = 1 means constant classifier output), so they cannot be "
    "compared with ours. Loss columns: as in the thesis, a GAN's train loss is its generator's "
    "loss and its val loss its discriminator's; a VAE's losses are the objectives of the papers "
    "cited in the code (per-example sums), while the thesis printed per-pixel means (each run's "
    "history.csv also has the per-pixel 'mse'). Evaluator metrics (metric network "
    "'evaluator:...') compare runs of this suite only, not published Inception FIDs.")
TIME_NOTE = (
    "'train s': seconds of training of the row's own model (mean over seeds), as measured on "
    "the machine that ran it; a two-stage row's first stage (autoencoder or tokenizer, shared "
    "by the rows of one latent size) is timed in its own run folder.")


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), (float(np.std(values)) if len(values) > 1 else None)


def aggregate(row, results: list[dict]) -> dict:
    """One table line from the metrics.json of every seed of ``row``."""
    networks = {r.get("metric_network") for r in results}
    if len(networks) > 1:
        raise ValueError(f"seeds of {row.key} were scored by different networks: {networks}")
    line = {"family": row.family, "model": row.model, "loss": row.loss,
            "batch_size": results[0]["batch_size"], "latent_size": row.latent_size,
            "seeds": len(results), "metric_network": networks.pop(),
            "metric_network_sha256": results[0].get("metric_network_sha256"),
            "n_samples": results[0].get("n_samples"), "thesis_batch_size": row.batch_size}
    for key in ("fid", "is", "kid", "train_loss", "val_loss", "train_seconds"):
        line[key], line[f"{key}_std"] = _mean_std([r.get(key) for r in results])
    for key in ("precision", "recall", "is_split_std", "kid_subset_std"):
        line[key] = _mean_std([r.get(key) for r in results])[0]
    for key in ("fid", "is", "train_loss", "val_loss"):
        line[f"thesis_{key}"] = row.thesis.get(key)
    samplers = {json.dumps(r["sampler"], sort_keys=True) for r in results if r.get("sampler")}
    if len(samplers) > 1:
        raise ValueError(f"seeds of {row.key} were sampled with different settings: {samplers}")
    line["sampler"] = json.loads(samplers.pop()) if samplers else None
    return line


def _cell(value, key):
    if value is None:
        if key in METRIC_KEYS:
            return "not computed"
        return "" if key.startswith("thesis_") or key.endswith("_std") else "n/a"
    if isinstance(value, float):
        return f"{value:.6g}" if key.startswith("thesis_") else f"{value:.4g}"
    return str(value)


def _pm(line, key):
    value, std = line.get(key), line.get(f"{key}_std")
    if value is None:
        return _cell(None, key)
    return f"{value:.4g}" if std is None else f"{value:.4g} ± {std:.2g}"


def metric_names(lines: list[dict]) -> tuple:
    """Column names of the three scores, after the network that produced them: the
    evaluator's fd_eval / is_eval are not Inception's FID / IS and are never called so."""
    networks = {str(line["metric_network"]) for line in lines}
    if networks and all(n.startswith("evaluator:") for n in networks):
        return "fd_eval", "is_eval", "KID (evaluator)"
    if networks and not any(n.startswith("evaluator:") or n == "None" for n in networks):
        return "FID", "IS", "KID"
    return "FID or fd_eval", "IS or is_eval", "KID"


def _scored_by(lines: list[dict]) -> str | None:
    """The one sentence naming the metric network when every row shares it (and its
    sample count); None when rows differ, which then get a column of their own."""
    shared = {(line["metric_network"], line["n_samples"]) for line in lines}
    if len(shared) != 1:
        return None
    network, n = shared.pop()
    if network is None:
        return "Metrics: not computed (run with --metrics none)."
    return (f"Every score below: metric network `{network}`, {n:,} samples per run against "
            f"the reference statistics of the whole train split.")


def _sampler_sentence(lines: list[dict]) -> str | None:
    """'Sampler settings: <model>: field value, ...' for the families whose runs record
    them (metrics.json ``sampler``): the settings that drew the scored samples."""
    by_model = {}
    for line in lines:
        if line.get("sampler"):
            text = ", ".join(f"{k} {v}" for k, v in sorted(line["sampler"].items()))
            by_model.setdefault(line["model"], {}).setdefault(text, []).append(
                f"{line['loss']}@{line['latent_size']}")
    if not by_model:
        return None
    parts = []
    for model, settings in by_model.items():
        if len(settings) == 1:
            parts.append(f"{model}: {next(iter(settings))}")
        else:
            parts += [f"{model} {', '.join(rows)}: {text}" for text, rows in settings.items()]
    return "Sampler settings: " + "; ".join(parts) + "."


def _override_marks(lines: list[dict]) -> dict:
    """Line index -> its footnote mark ('†1', '†2', ...) for the lines whose runs were
    trained with ``run_all.py --set`` overrides (a line's ``overrides``) or in half
    precision (its ``trained_in``, ``run_all.py --precision``); {} when none."""
    marks, seen = {}, {}
    for i, line in enumerate(lines):
        if line.get("overrides") or line.get("trained_in"):
            key = json.dumps([line.get("overrides"), line.get("trained_in")], sort_keys=True)
            marks[i] = seen.setdefault(key, f"†{len(seen) + 1}")
    return marks


def _override_notes(lines: list[dict], marks: dict) -> list:
    """The footnotes of :func:`_override_marks`: each mark's --set values and folders."""
    notes = {}
    for i, mark in marks.items():
        line = lines[i]
        overrides, trained_in = line.get("overrides") or {}, line.get("trained_in")
        values = " ".join([f"--precision {trained_in}"] * bool(trained_in)
                          + [f"--set {line['family']}.{k}={value_text(v)}"
                             for k, v in sorted(overrides.items())])
        folder = PRECISION_MARKS.get(trained_in, "")
        notes.setdefault(mark, f"{mark} Trained with `{values}` (run folders "
                               f"`runs/<row>-s<seed>{folder}{overrides_label(overrides)}`), "
                               f"not the profile's preset"
                               f"{' in float32' if trained_in else ''}.")
    return list(notes.values())


def markdown(table, lines: list[dict], context: str) -> str:
    fd, is_, kid = metric_names(lines)
    scored_by = _scored_by(lines)
    head = ["model (loss)", "batch, latent", "seeds", f"{fd} ± seed std", f"{is_} ± seed std",
            f"{kid} ± seed std", "precision", "recall", "train loss", "val loss",
            "train s"]
    head += [] if scored_by else ["metric network (samples)"]
    head += ["thesis FID", "thesis IS", "thesis train", "thesis val"]
    out = [f"# {table.title}", "", context, ""]
    out += [scored_by, ""] if scored_by else []
    sampler = _sampler_sentence(lines)
    out += [sampler, ""] if sampler else []
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    marks = _override_marks(lines)
    for i, line in enumerate(lines):
        seconds = line.get("train_seconds")
        mark = f" {marks[i]}" if i in marks else ""
        cells = [f"{line['model']} ({line['loss']}){mark}",
                 f"{line['batch_size']}, {line['latent_size']}", str(line["seeds"]),
                 _pm(line, "fid"), _pm(line, "is"), _pm(line, "kid"),
                 _cell(line["precision"], "precision"), _cell(line["recall"], "recall"),
                 _pm(line, "train_loss"), _pm(line, "val_loss"),
                 "n/a" if seconds is None else f"{seconds:,.0f}"]
        cells += [] if scored_by else [f"{line['metric_network']} ({line['n_samples']})"]
        cells += [_cell(line["thesis_fid"], "thesis_fid"),
                  "" if line["thesis_is"] is None else f"{line['thesis_is']:.2f}",
                  _cell(line["thesis_train_loss"], "thesis_train_loss"),
                  _cell(line["thesis_val_loss"], "thesis_val_loss")]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", *_override_notes(lines, marks)] if marks else []
    out += ["", f"Note: {NOTE} {TIME_NOTE}", ""]
    return "\n".join(out)


def _csv_line(line):
    # A metric that was not computed says so, rather than leaving a blank a reader may misread.
    return {k: ("not computed" if v is None and k in METRIC_KEYS else
                json.dumps(v, sort_keys=True) if isinstance(v, dict) else v)
            for k, v in line.items()}


def write_table(out_dir, table, lines: list[dict], context: str):
    """table_X.{md,csv,json} in ``out_dir``, each written atomically."""
    base = os.path.join(out_dir, table.name)
    # the overrides column only where a line has --set overrides (other tables unchanged)
    columns = COLUMNS + [key for key in ("overrides", "trained_in")
                         if any(line.get(key) for line in lines)]
    artifacts.write_csv(base + ".csv", [_csv_line(line) for line in lines], columns)
    artifacts.write_json(base + ".json", {"table": table.name, "title": table.title,
                                        "context": context, "note": NOTE, "rows": lines})
    artifacts.write_text(base + ".md", markdown(table, lines, context))
