"""Report writers: whole or nothing; grids; table aggregation over seeds."""
import csv
import json

import numpy as np
import pytest

from experiments import summary, table_3_1
from common import files as artifacts


def test_a_failed_write_leaves_the_previous_file(tmp_path):
    path = tmp_path / "metrics.json"
    artifacts.write_json(path, {"fid": 1.0})
    with pytest.raises(RuntimeError):
        with artifacts.atomic_path(path) as tmp:
            with open(tmp, "w") as f:
                f.write('{"fid": 2')  # half a file...
            raise RuntimeError("killed mid-write")
    assert artifacts.read_json(path) == {"fid": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp left behind


def test_uint8_conversion_and_grid():
    images = np.array([-1.0, -0.5, 0.0, 1.0, 1.5], np.float32).reshape(5, 1, 1, 1)
    assert artifacts.to_uint8(images).ravel().tolist() == [0, 64, 128, 255, 255]
    grid = artifacts.image_grid(np.zeros((5, 4, 4, 3), np.uint8), columns=3)
    assert grid.shape == (2 * 5 - 1, 3 * 5 - 1, 3)


def _result(seed, fid, network="evaluator:x"):
    return {"batch_size": 8, "n_samples": 64, "metric_network": network, "fid": fid,
            "is": 2.0 + seed, "is_split_std": 0.1 + seed, "kid": None, "train_loss": 1.0 + seed,
            "val_loss": 2.0, "precision": 0.5, "recall": 0.25}


def test_seeds_aggregate_to_mean_and_std_and_networks_never_mix():
    row = table_3_1.TABLE.rows[0]
    line = summary.aggregate(row, [_result(0, 10.0), _result(1, 20.0)])
    assert line["fid"] == 15.0 and line["fid_std"] == 5.0 and line["seeds"] == 2
    assert line["is"] == 2.5 and line["is_std"] == 0.5  # std over seeds, not the split std
    assert line["is_split_std"] == pytest.approx(0.6)  # the within-run spread, its own column
    assert line["thesis_fid"] == pytest.approx(1545.6937)
    single = summary.aggregate(row, [_result(0, 10.0)])
    # one seed has no spread across seeds; the split spread never stands in for it
    assert single["is_std"] is None and single["fid_std"] is None
    assert single["is_split_std"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="different networks"):
        summary.aggregate(row, [_result(0, 1.0), _result(1, 1.0, "inception-2015-12-05")])


def test_markdown_names_scores_after_their_network_and_shows_training_time():
    rows = table_3_1.TABLE.rows
    evaluated = [summary.aggregate(rows[0], [dict(_result(0, 10.0), train_seconds=100.0),
                                             dict(_result(1, 20.0), train_seconds=300.0)]),
                 summary.aggregate(rows[1], [_result(0, 12.0)])]
    text = summary.markdown(table_3_1.TABLE, evaluated, "context")
    head = next(line for line in text.splitlines() if line.startswith("| model"))
    assert "fd_eval ± seed std" in head and "is_eval ± seed std" in head
    assert "FID ±" not in head and "metric network" not in head  # one network: said once
    assert "metric network `evaluator:x`, 64 samples per run" in text
    assert "| 200 |" in text and "| n/a |" in text  # mean seconds; no time recorded

    inception = summary.aggregate(rows[2], [_result(0, 3.0, "inception-2015-12-05")])
    mixed = summary.markdown(table_3_1.TABLE, [evaluated[0], inception], "context")
    head = next(line for line in mixed.splitlines() if line.startswith("| model"))
    assert "FID or fd_eval ± seed std" in head and "metric network (samples)" in head
    assert "inception-2015-12-05 (64)" in mixed and "Every score below" not in mixed
    only_inception = summary.markdown(table_3_1.TABLE, [inception], "context")
    assert "| FID ± seed std | IS ± seed std |" in only_inception


def test_tables_say_which_sampler_settings_drew_the_scored_samples(tmp_path):
    rows = table_3_1.TABLE.rows
    guided = {"sampler": "ddim", "sampling_steps": 50, "guidance_scale": 2.0}
    lines = [summary.aggregate(rows[0], [_result(0, 10.0)]),  # a family without a sampler
             summary.aggregate(rows[1], [dict(_result(0, 4.0), sampler=guided),
                                         dict(_result(1, 5.0), sampler=guided)])]
    assert lines[0]["sampler"] is None and lines[1]["sampler"] == guided
    text = summary.markdown(table_3_1.TABLE, lines, "context")
    assert (f"Sampler settings: {rows[1].model}: guidance_scale 2.0, sampler ddim, "
            f"sampling_steps 50.") in text
    with pytest.raises(ValueError, match="different settings"):
        summary.aggregate(rows[1], [dict(_result(0, 4.0), sampler=guided),
                                    dict(_result(1, 4.0), sampler={**guided, "guidance_scale": 1})])
    summary.write_table(tmp_path, table_3_1.TABLE, lines, "context")
    with open(tmp_path / "table_3_1.csv") as f:
        written = list(csv.DictReader(f))
    assert written[0]["sampler"] == "" and json.loads(written[1]["sampler"]) == guided


# ------------------------------------------------------- experiments.compare: the side-by-side report

def _row(table, family, loss, latent):
    return next(r for r in table.TABLE.rows
                if (r.family, r.loss, r.latent_size) == (family, loss, latent))


def _fake_run(out, row, seed, *, fid, mse, network="evaluator:synthetic:0.9", npz=True):
    """A finished smoke run folder of ``row``: metrics.json, config.json, history.csv and
    samples.npz whose 64 images all have the value ``seed * 10 + len(loss)``."""
    run = out / "runs" / f"{row.family}-{row.loss}-b8-z{row.latent_size}-s{seed}"
    metrics = {"run": run.name, "family": row.family, "loss": row.loss, "seed": seed,
               "batch_size": 8, "latent_size": row.latent_size, "n_samples": 64,
               "metric_network": network, "fid": fid, "is": 2.0, "is_std": 0.3, "kid": None,
               "train_loss": 1.0, "val_loss": 1.0, "train_loss_key": "loss",
               "val_loss_key": "val_loss"}
    if network == "not computed":  # --metrics none
        metrics.update(fid=None, is_std=None, **{"is": None})
    artifacts.write_json(run / "metrics.json", metrics)
    artifacts.write_json(run / "config.json", {"identity": {"profile": "smoke",
                                                            "dataset": "synthetic"}})
    artifacts.write_csv(run / "history.csv", [
        {"epoch": e, "loss": 10.0 / e, "val_loss": 12.0 / e, "mse": mse / e, "val_mse": mse}
        for e in (1, 2)])
    if npz:
        value = seed * 10 + len(row.loss)
        artifacts.write_npz(run / "samples.npz", images=np.full((64, 4, 4, 3), value, np.uint8))
    return metrics


def _fake_report(out, seeds=(0, 1), network="evaluator:synthetic:0.9"):
    """Table 3.1's VAE/ELBO row (``seeds``) and Table 3.2's VAE/MI row (seed 1 only)."""
    from experiments import table_3_2

    elbo, mi = _row(table_3_1, "vae", "elbo", 128), _row(table_3_2, "vae", "mi", 128)
    runs = [_fake_run(out, elbo, s, fid=10.0 + 10 * s, mse=1.0 + 2 * s, network=network)
            for s in seeds]
    summary.write_table(out, table_3_1.TABLE, [summary.aggregate(elbo, runs)], "context 1")
    mi_runs = [_fake_run(out, mi, 1, fid=5.0, mse=0.5, network=network)]
    summary.write_table(out, table_3_2.TABLE, [summary.aggregate(mi, mi_runs)], "context 2")
    return out


def test_report_readme_shows_every_table_and_each_familys_figures(tmp_path):
    from experiments import compare

    report = compare.load_report(_fake_report(tmp_path))
    assert (report.profile, report.dataset) == ("smoke", "synthetic")
    assert [t.name for t in report.tables] == ["table_3_1", "table_3_2"]
    path = compare.write_readme(report)
    text = (tmp_path / "README.md").read_text()
    assert path == str(tmp_path / "README.md")
    assert text.startswith("# Results: profile `smoke`, dataset `synthetic`")
    assert "## Experiment 1: " in text and "## Experiment 2: " in text  # tables, one level down
    assert text.count("Note: Thesis values") == 2 and "thesis FID" in text  # the footnote
    assert "### VAE (vae): elbo, mi" in text
    # each family's pairs of losses tested against seed noise (mi has one seed)
    assert "| elbo − mi | 128 | 2 / 1 | fd_eval | 10 | – | – | one seed: not testable |" in text
    assert "## The thesis's claims, one by one" in text  # checked by tests/test_claims.py
    for kind in ("samples", "curves", "metrics"):
        assert f"](figures/vae-{kind}.png)" in text
        assert (tmp_path / "figures" / f"vae-{kind}.png").stat().st_size > 1000
    assert not [p for p in tmp_path.rglob(".tmp-*")]  # written whole, nothing left over
    # at a glance, above the tables: the baseline row's samples per family
    assert text.index("](figures/glance.png)") < text.index("## Experiment 1: ")
    assert (tmp_path / "figures" / "glance.png").stat().st_size > 1000


def test_glance_shows_each_familys_baseline_scored_and_timed(tmp_path):
    from experiments import compare

    out = _fake_report(tmp_path, seeds=(1, 2))
    first = out / "runs" / "vae-elbo-b8-z128-s1" / "metrics.json"
    artifacts.write_json(first, {**artifacts.read_json(first), "train_seconds": 1234.4,
                                 "stages": {"tokenizer": {"train_seconds": 56.0}}})
    fig = compare.glance_figure(compare.load_report(out))
    titles = [ax.get_title() for ax in fig.axes]
    # the baseline loss (elbo, not mi) of the lowest seed that ran it (1: fd 20)
    assert titles == ["VAE (elbo), latent 128\nfd_eval 20, 1,234 s of training + 56 s tokenizer"]
    # a non-neutral sampler setting is named (guidance 2), a neutral one is not (psi 1)
    artifacts.write_json(first, {**artifacts.read_json(first),
                                 "sampler": {"guidance_scale": 2.0, "truncation_psi": 1.0}})
    fig = compare.glance_figure(compare.load_report(out))
    assert fig.axes[0].get_title().startswith("VAE (elbo), latent 128, guidance 2\n")


def test_samples_compare_runs_of_one_seed_across_losses(tmp_path):
    from experiments import compare

    report = compare.load_report(_fake_report(tmp_path, seeds=(0, 1)))
    lines = report.families()["vae"]
    assert compare.sample_seed(lines) == 1  # the seed both losses ran, not elbo's first
    fig = compare.samples_figure(report, lines)
    shown = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert [int(a.min()) for a in shown] == [1 * 10 + 4, 1 * 10 + 2]  # elbo s1, mi s1 (gutters 255)
    assert "seed 1" in fig._suptitle.get_text()


def test_figure_titles_name_profile_dataset_seeds_and_network(tmp_path):
    from experiments import compare

    report = compare.load_report(_fake_report(tmp_path))
    for kind, draw in compare.FIGURES.items():
        title = draw(report, report.families()["vae"])._suptitle.get_text()
        title = " ".join(title.split())  # lines are wrapped to the figure width
        for part in ("profile smoke", "dataset synthetic", "1/2 seeds per row",
                     "metric network evaluator:synthetic:0.9"):
            assert part in title, (kind, title)


def test_figure_titles_name_the_metric_networks_weights_where_recorded(tmp_path):
    from experiments import compare

    report = compare.load_report(_fake_report(tmp_path))
    lines = report.families()["vae"]
    for line in lines:
        line.row["metric_network_sha256"] = "0123456789abcdef" * 4
    title = " ".join(compare.metrics_figure(report, lines)._suptitle.get_text().split())
    assert "evaluator:synthetic:0.9 (weights sha256 0123456789ab)" in title


def test_curves_overlay_the_losses_and_average_the_seeds(tmp_path):
    from experiments import compare

    report = compare.load_report(_fake_report(tmp_path))
    fig = compare.curves_figure(report, report.families()["vae"])
    objective, shared = fig.axes[:2]
    assert "per-pixel MSE" in shared.get_title()
    lines = {line.get_label(): line.get_ydata() for line in shared.lines}
    assert set(lines) == {"elbo: mse", "elbo: val_mse", "mi: mse", "mi: val_mse"}
    assert list(lines["elbo: mse"]) == [2.0, 1.0]  # mean of seeds 0 (1/e) and 1 (3/e)
    assert len(shared.collections) == 2  # a std band for elbo's two seeds, none for mi's one
    assert {line.get_label() for line in objective.lines} >= {"elbo: loss", "mi: val_loss"}


def _bars(ax):
    from matplotlib.container import BarContainer

    return next(c for c in ax.containers if isinstance(c, BarContainer))


def test_metric_bars_show_a_t_interval_of_the_seed_mean_only_across_seeds(tmp_path):
    from experiments import compare

    report = compare.load_report(_fake_report(tmp_path))
    fig = compare.metrics_figure(report, report.families()["vae"])
    fid, is_ = fig.axes[:2]
    assert [t.get_text() for t in fid.get_xticklabels()] == ["elbo", "mi"]
    heights = [bar.get_height() for bar in _bars(fid)]
    assert heights == [15.0, 5.0]
    segments = _bars(fid).errorbar.lines[2][0].get_segments()
    # elbo's seeds 10 and 20: s = 7.071, se = 5, t_{0.975, 1} = 12.706: 15 +- 63.53
    assert segments[0][:, 1] == pytest.approx([15 - 63.531, 15 + 63.531], abs=1e-3)
    assert len(segments[1]) == 0  # mi: one seed, no interval drawn
    is_segments = _bars(is_).errorbar.lines[2][0].get_segments()
    assert len(is_segments[1]) == 0  # mi's split std (0.3) is not a seed spread
    assert "95% CI (t)" in fid.get_ylabel()
    assert "95% CI of the seed mean" in fig._suptitle.get_text()
    one_seed = compare.load_report(_fake_report(tmp_path / "one", seeds=(1,)))
    fig = compare.metrics_figure(one_seed, one_seed.families()["vae"])
    assert _bars(fig.axes[0]).errorbar is None
    assert "no error bars" in fig._suptitle.get_text()


def test_report_without_metrics_or_samples_says_so(tmp_path):
    from experiments import compare

    out = _fake_report(tmp_path, network="not computed")
    for npz in out.rglob("samples.npz"):
        npz.unlink()
    report = compare.load_report(out)
    lines = report.families()["vae"]
    assert compare.metrics_figure(report, lines) is None
    assert compare.samples_figure(report, lines) is None  # neither samples.npz nor samples.png
    artifacts.write_png(out / "runs" / "vae-mi-b8-z128-s1" / "samples.png",
                        np.zeros((6, 10, 3), np.uint8))
    fig = compare.samples_figure(report, lines)
    titles = [ax.get_title() for ax in fig.axes]
    assert "mi, latent 128\n(samples.png: generated | real)" in titles
    compare.write_readme(report)
    text = (out / "README.md").read_text()
    assert "Metrics were not computed" in text and "vae-metrics.png" not in text


def test_report_of_a_missing_folder_or_table_is_one_clear_error(tmp_path):
    from experiments import compare

    with pytest.raises(compare.ReportError, match="no such folder; run run_all.py first"):
        compare.load_report(tmp_path / "nowhere")
    with pytest.raises(compare.ReportError, match="holds no experiment tables"):
        compare.load_report(tmp_path)
    _fake_report(tmp_path)
    with pytest.raises(compare.ReportError, match=r"no table table_9 \(found: table_3_1, "):
        compare.load_report(tmp_path, tables=["table_9"])
    report = compare.load_report(tmp_path, tables=["table_3_2"], also=["table_3_1", "x"])
    assert [t.name for t in report.tables] == ["table_3_1", "table_3_2"]


def test_run_all_writes_the_report_index(tmp_path):
    from experiments import reporting

    assert reporting.write_report_index(str(_fake_report(tmp_path))) is True
    assert "### VAE (vae)" in (tmp_path / "README.md").read_text()


def test_compare_command_redraws_a_folder_or_says_why_not(tmp_path, capsys):
    from experiments import compare

    assert compare.main([str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert compare.main([str(_fake_report(tmp_path))]) == 0
    assert (tmp_path / "README.md").exists() and (tmp_path / "figures/vae-curves.png").exists()
