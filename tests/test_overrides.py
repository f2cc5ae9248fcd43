"""``run_all.py --set family.field=value`` and ``python -m experiments.sample --set``:
typed conversion against the config dataclass, one-line refusals (exit 2, nothing trained),
the override recorded in the run's identity and folder name (so a run never stands in for
one trained without it, nor the other way round), the tables' marker, and the sampling
command's sampler fields.

The end-to-end tests replace the training (``runner.execute_run``) by a stand-in that
writes the run's config.json and metrics.json as the runner does, so the whole command
(plan, run loop, tables, README) runs in seconds; ``test_set_trains_its_own_run`` trains.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import run_all
from common.config import (ConfigError, convert_overrides, convert_value, overrides_label,
                           parse_override, parse_setting)

ROOT = Path(__file__).resolve().parents[1]
BASE = ["--profile", "smoke", "--dataset", "synthetic", "--metrics", "none", "--quiet"]
VAE = ["--only", "vae/elbo@128"]
PLAIN = "vae-elbo-b8-z128-s0"
SET = "vae-elbo-b8-z128-s0+learning_rate=0.002+widths=16,32,64"


# ------------------------------------------------------------------ parsing and types
def test_parse_override_splits_family_field_and_value():
    assert parse_override("gan.g_learning_rate=0.002") == ("gan", "g_learning_rate", "0.002")
    assert parse_override("vae.widths = 16,32,64") == ("vae", "widths", "16,32,64")
    assert parse_override("gan.diffaugment=") == ("gan", "diffaugment", "")
    assert parse_override("gan.x=a=b") == ("gan", "x", "a=b")  # the first = splits
    for bad in ("gan", "gan.g_learning_rate", "g_learning_rate=1", "gan.a.b=1", ".a=1",
                "gan.=1", "g-an.x=1"):
        with pytest.raises(ConfigError, match="FAMILY.FIELD=VALUE"):
            parse_override(bad)
    assert parse_setting("guidance_scale=3") == ("guidance_scale", "3")
    with pytest.raises(ConfigError, match="FIELD=VALUE"):
        parse_setting("guidance_scale")


def test_values_are_converted_against_the_declared_type():
    from models.diffusion.config import DiffusionConfig
    from models.gan.config import GANConfig
    from models.vae.config import VAEConfig

    assert convert_overrides(GANConfig, {
        "g_learning_rate": "2e-3", "d_reg_every": "+8", "ada": "True", "d_steps": "none",
        "jit_compile": "false", "diffaugment": "color,translation", "truncation_psi": "1",
    }) == {"g_learning_rate": 0.002, "d_reg_every": 8, "ada": True, "d_steps": None,
           "jit_compile": False, "diffaugment": "color,translation", "truncation_psi": 1.0}
    assert convert_overrides(GANConfig, {"d_steps": "3"}) == {"d_steps": 3}
    assert convert_overrides(VAEConfig, {"widths": "16,32,64"}) == {"widths": (16, 32, 64)}
    assert convert_overrides(VAEConfig, {"widths": "(8, 16)"}) == {"widths": (8, 16)}
    assert convert_overrides(DiffusionConfig, {"guidance_scale": "3"}) == {"guidance_scale": 3.0}
    assert isinstance(convert_overrides(DiffusionConfig, {"guidance_scale": "3"})[
        "guidance_scale"], float)
    # the shapes no family uses today, as the converter knows them
    assert convert_value(typing.Literal["ddim", "ddpm"], "ddpm") == "ddpm"
    assert convert_value(typing.Optional[float], "null") is None
    assert convert_value(tuple[int, ...], "1,2,3") == (1, 2, 3)
    assert convert_value(tuple[int, float], "1, 2") == (1, 2.0)
    for tp, text in ((typing.Literal["ddim", "ddpm"], "euler"), (tuple[int, float], "1"),
                     (dict, "a")):
        with pytest.raises(ValueError):
            convert_value(tp, text)


@pytest.mark.parametrize("field, text, message", [
    ("g_learning_rate", "fast", "is float; give a number, not 'fast'"),
    ("g_learning_rate", "nan", "give a finite number, not 'nan'"),
    ("g_learning_rate", "-inf", "give a finite number"),
    ("d_reg_every", "2.5", "is int; give a whole number, not '2.5'"),
    ("d_reg_every", "1e3", "give a whole number"),
    ("ada", "maybe", "is bool; give true or false"),
    ("d_steps", "two", "give a whole number, or none"),
    ("learning_rate", "1", "unknown key for GANConfig; known keys: "),
])
def test_bad_values_are_one_line_config_errors(field, text, message):
    from models.gan.config import GANConfig

    with pytest.raises(ConfigError, match=None) as err:
        convert_overrides(GANConfig, {field: text}, where="--set gan.")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(f"--set gan.{field}")


def test_widths_must_be_whole_numbers():
    from models.vae.config import VAEConfig

    for text in ("16,3.5", "", "16,,32", "a,b"):
        with pytest.raises(ConfigError, match="VAEConfig.widths is a tuple of int"):
            convert_overrides(VAEConfig, {"widths": text})


def test_folder_label_is_readable_stable_and_filesystem_safe():
    assert overrides_label({}) == ""
    assert overrides_label({"g_learning_rate": 0.002}) == "+g_learning_rate=0.002"
    assert overrides_label({"widths": (16, 32), "ada": True, "d_steps": None}) == \
        "+ada=true+d_steps=none+widths=16,32"
    # the same values written otherwise (2e-3, a list from JSON) name the same folder
    assert overrides_label({"g_learning_rate": 2e-3}) == overrides_label({"g_learning_rate": 0.002})
    assert overrides_label({"widths": [16, 32]}) == overrides_label({"widths": (16, 32)})
    # characters a file name should not hold, or a long list: field names and a hash
    odd = overrides_label({"diffaugment": "color/translation cutout"})
    assert odd.startswith("+diffaugment-h") and len(odd) == len("+diffaugment-h") + 8
    assert odd != overrides_label({"diffaugment": "color/translation"})
    long = overrides_label({f"field_{i}": 0.123456789 for i in range(12)})
    assert len(long) < 100 and "/" not in long and " " not in long
    assert overrides_label({"a": "x+b=y"}) != overrides_label({"a": "x", "b": "y"})


def test_set_is_parsed_without_tensorflow():
    """--set is read into the Request without TensorFlow (its type is checked later)."""
    code = ("import sys, run_all; r = run_all.parse_args(['--set', 'gan.g_learning_rate=0.002', "
            "'--set', 'diffusion.guidance_scale=3']); print(r.overrides, "
            "'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("(('gan', 'g_learning_rate', '0.002'), "
                                  "('diffusion', 'guidance_scale', '3')) False")


# --------------------------------------------------------------- run_all.py refusals
def _main(tmp_path, capsys, *args):
    try:
        code = run_all.main([*BASE, "--out", str(tmp_path / "o"), *args])
    except SystemExit as exit_:  # argparse's errors
        code = exit_.code
    return code, capsys.readouterr()


@pytest.mark.parametrize("args, message", [
    (["--set", "vae.learning_rate=fast"], "VAEConfig.learning_rate is float; give a number"),
    (["--set", "vae.learning_rate=nan"], "give a finite number, not 'nan'"),
    (["--set", "vae.learning_rate=inf"], "give a finite number, not 'inf'"),
    (["--set", "vae.widths=16,32.5"], "widths is a tuple of int"),
    (["--set", "vae.lr=0.1"], "--set vae.lr: unknown key for VAEConfig; known keys: "),
    (["--set", "vea.learning_rate=0.1"], "unknown model family 'vea'; known families"),
    (["--set", "vae.batch_size=16"], "the batch comes from the table row"),
    (["--set", "vae.latent_size=64"], "choose it with --only family@latent"),
    (["--set", "vae.loss=wae"], "choose it with --only family/loss"),
    (["--set", "gan.g_learning_rate=0.002"], "no selected row is of the gan family"),
    (["--set", "faces.learning_rate=0.1"], "not --set"),
    (["--only", "gan/wasserstein_gp@128", "--set", "gan.d_architecture=skipnet"],
     "gan/wasserstein_gp@128: d_architecture must be"),  # the family's own checks
    (["--set", "vae.learning_rate"], "write FAMILY.FIELD=VALUE"),
    (["--set", "vae.learning_rate=1", "--set", "vae.learning_rate=2"], "given twice"),
])
def test_bad_set_is_refused_in_one_line_before_anything_trains(tmp_path, capsys, monkeypatch,
                                                              args, message):
    import experiments.runner as runner

    def refuse(plan, **kwargs):
        raise AssertionError(f"{plan.name} started training")

    monkeypatch.setattr(runner, "execute_run", refuse)
    code, captured = _main(tmp_path, capsys, *VAE, *args)
    assert code == run_all.EXIT_BAD_INPUT, captured.err
    assert message in captured.err, captured.err
    assert "Traceback" not in captured.err
    assert len([line for line in captured.err.splitlines() if "error" in line]) == 1
    assert not (tmp_path / "o" / "runs").exists()


# ------------------------------------------------- identity, folder name, no reuse
def _stand_in_training(monkeypatch, trained):
    """runner.execute_run writing what the runner writes (config.json, then
    metrics.json) without training; ``trained`` collects the run names."""
    import experiments.runner as runner
    from common.run_record import RunMetrics

    def execute_run(plan, *, train_source, val_source, strategy, score=None, verbose=True,
                    extra_callbacks=()):
        trained.append(plan.name)
        runner._record(plan, plan.family.final_stage.name, plan.family_config.batch_size,
                       train_source, val_source, strategy, model=plan.row.model,
                       table=plan.row.table,
                       thesis_row={"batch_size": plan.row.batch_size,
                                   "latent_size": plan.row.latent_size}).write(plan.run_dir)
        metrics = RunMetrics(run=plan.name, table=plan.row.table, family=plan.row.family,
                             model=plan.row.model, loss=plan.row.loss, seed=plan.seed,
                             batch_size=plan.family_config.batch_size,
                             latent_size=plan.row.latent_size, epochs=1, steps=1,
                             train_loss=float(len(trained)), val_loss=1.0,
                             n_samples=plan.n_samples, train_seconds=1.0,
                             ).updated({**runner.UNSCORED, **runner._sampler_record(plan)})
        metrics.write(plan.run_dir)
        return metrics

    monkeypatch.setattr(runner, "execute_run", execute_run)


def _table(out, name="table_3_1"):
    with open(out / f"{name}.csv") as f:
        return list(csv.DictReader(f))


def test_set_is_recorded_and_never_reuses_the_plain_run(tmp_path, capsys, monkeypatch):
    trained = []
    _stand_in_training(monkeypatch, trained)
    out = tmp_path / "o"
    args = [*VAE, "--set", "vae.learning_rate=2e-3", "--set", "vae.widths=16,32,64"]
    code, captured = _main(tmp_path, capsys, *args)
    assert code == 0, captured.err
    assert trained == [SET]
    config = json.loads((out / "runs" / SET / "config.json").read_text())
    assert config["identity"]["overrides"] == {"learning_rate": 0.002, "widths": [16, 32, 64]}
    assert config["identity"]["family_config"]["learning_rate"] == 0.002
    assert config["family_config"]["widths"] == [16, 32, 64]

    # the plain row: its own folder, trained, not the overridden one
    code, captured = _main(tmp_path, capsys, *VAE)
    assert code == 0, captured.err
    assert f"{PLAIN:<40s} table_3_1  (to run)" in captured.out
    assert trained == [SET, PLAIN]
    plain = json.loads((out / "runs" / PLAIN / "config.json").read_text())
    assert "overrides" not in plain["identity"]
    assert plain["identity"]["family_config"]["learning_rate"] == 0.001

    # the same --set again (written otherwise): complete, skipped; nothing trains
    code, captured = _main(tmp_path, capsys, *VAE, "--set", "vae.widths=(16, 32, 64)",
                           "--set", "vae.learning_rate=0.002")
    assert code == 0, captured.err
    assert f"{SET} table_3_1  (complete, skipped)" in captured.out
    assert trained == [SET, PLAIN]

    # a --set equal to the preset is no override: the plain run, skipped
    code, captured = _main(tmp_path, capsys, *VAE, "--set", "vae.learning_rate=0.001")
    assert code == 0, captured.err
    assert "the smoke profile's value already" in captured.out
    assert f"{PLAIN:<40s} table_3_1  (complete, skipped)" in captured.out
    assert trained == [SET, PLAIN]

    # the tables: one line each, the overridden one marked with a footnote
    rows = _table(out)
    assert [r["overrides"] for r in rows] == [
        "", json.dumps({"learning_rate": 0.002, "widths": [16, 32, 64]})]
    assert [r["train_loss"] for r in rows] == ["2", "1"]  # each line its own run
    md = (out / "table_3_1.md").read_text()
    assert "| VAE (elbo) | 8, 128 |" in md and "| VAE (elbo) †1 | 8, 128 |" in md
    assert ("†1 Trained with `--set vae.learning_rate=0.002 --set vae.widths=16,32,64` "
            "(run folders `runs/<row>-s<seed>+learning_rate=0.002+widths=16,32,64`)") in md
    table = json.loads((out / "table_3_1.json").read_text())
    assert "overrides" not in table["rows"][0]
    assert table["rows"][1]["overrides"] == {"learning_rate": 0.002, "widths": [16, 32, 64]}
    # the README shows both tables' lines; its figures compare the presets' runs only
    from experiments import compare

    report = compare.load_report(out)
    lines = report.tables[0].lines
    assert [[run.name for run in line.runs] for line in lines] == [[PLAIN], [SET]]
    assert [line.row.get("overrides") is None for line in report.families()["vae"]] == [True]


def test_a_sampler_field_set_samples_the_finished_run_again(tmp_path, capsys, monkeypatch):
    """--set of a sampler field (Family.sampler_fields) names no folder: the finished
    plain run is sampled again with it (runner.resample_run), never retrained."""
    import experiments.runner as runner

    trained, resampled = [], []
    _stand_in_training(monkeypatch, trained)
    monkeypatch.setattr(runner, "resample_run", lambda plan, **kwargs: resampled.append(
        (plan.name, plan.family_config.truncation_psi)) or runner.RunMetrics.read(plan.run_dir))
    gan = ["--only", "gan/wasserstein_gp@128"]
    assert _main(tmp_path, capsys, *gan)[0] == 0
    code, captured = _main(tmp_path, capsys, *gan, "--set", "gan.truncation_psi=0.5")
    assert code == 0, captured.err
    name = "gan-wasserstein_gp-b8-z128-s0"
    assert f"{name:<40s} table_3_1  (complete, to sample again: truncation_psi 1.0 -> 0.5)" \
        in captured.out
    assert trained == [name] and resampled == [(name, 0.5)]
    assert os.listdir(tmp_path / "o" / "runs") == [name]


def test_overrides_of_a_shared_stage_name_its_folder(tmp_path):
    """A first stage whose shared fields are overridden gets its own folder; other
    overrides share the plain stage; sampler fields change no name (the run is sampled
    again, runner.sampler_changes)."""
    from experiments import planning, runner
    from experiments.profiles import get_profile

    ((_, (row, *_)), *_) = planning.select_rows(["diffusion/mse@128"])
    profile = get_profile("smoke")

    def plan(**cli):
        return runner.plan_run(row, 0, profile, dataset="synthetic", image_size=32,
                               out_dir=str(tmp_path), cli_overrides=cli or None)

    plain = plan()
    assert (plain.name, plain.stages[0].name) == ("diffusion-mse-b8-z128-s0",
                                                  "diffusion-autoencoder-z128-s0")
    assert "overrides" not in plain.identity() and "overrides" not in plain.stages[0].identity()
    ae = plan(ae_learning_rate=0.0005)
    assert ae.name == "diffusion-mse-b8-z128-s0+ae_learning_rate=0.0005"
    assert ae.stages[0].name == "diffusion-autoencoder-z128-s0+ae_learning_rate=0.0005"
    assert ae.stages[0].identity()["overrides"] == {"ae_learning_rate": 0.0005}
    assert ae.identity()["inputs"]["autoencoder"] == ae.stages[0].identity()
    denoiser = plan(learning_rate=0.0001, guidance_scale=3.0)
    assert denoiser.name == "diffusion-mse-b8-z128-s0+learning_rate=0.0001"
    assert denoiser.stages[0].run_dir == plain.stages[0].run_dir
    assert denoiser.identity()["overrides"] == {"learning_rate": 0.0001}
    assert denoiser.family_config.guidance_scale == 3.0
    guided = plan(guidance_scale=3.0)
    assert guided.run_dir == plain.run_dir and "overrides" not in guided.identity()


def test_committed_tables_are_written_byte_identical_without_overrides(tmp_path):
    """The table writer, given the rows of the committed quick Fashion-MNIST tables,
    writes them again byte for byte (no overrides column, marker or footnote)."""
    from experiments import table_3_1, table_3_2
    from experiments.summary import write_table

    report = ROOT / "reports" / "quick" / "fashion_mnist"
    if not (report / "table_3_1.json").exists():
        pytest.skip("no committed quick Fashion-MNIST report")
    for table in (table_3_1.TABLE, table_3_2.TABLE):
        data = json.loads((report / f"{table.name}.json").read_text())
        write_table(tmp_path, table, data["rows"], data["context"])
        for ext in ("md", "csv", "json"):
            assert (tmp_path / f"{table.name}.{ext}").read_bytes() == \
                (report / f"{table.name}.{ext}").read_bytes(), f"{table.name}.{ext}"


# ------------------------------------------------------------ experiments.sample --set
def _fake_run(tmp_path, family):
    """A folder whose config.json names ``family``: enough for --set to be checked
    (before the run is loaded)."""
    from common.run_record import RunConfig

    run = tmp_path / family
    run.mkdir()
    RunConfig(family=family, stage="x").write(run)
    return str(run)


@pytest.mark.parametrize("family, setting, message", [
    ("diffusion", "learning_rate=0.1", "not a sampler field of the diffusion family (its "
                                       "sampler fields are sampler, sampling_steps, ddim_eta, "
                                       "guidance_scale)"),
    ("diffusion", "batch_size=4", "not a sampler field"),
    ("diffusion", "guidance_scale=strong", "DiffusionConfig.guidance_scale is float; give a "
                                           "number"),
    ("diffusion", "guidance_scale=nan", "give a finite number"),
    ("diffusion", "sampling_steps=12.5", "give a whole number"),
    ("diffusion", "gan.truncation_psi=0.5", "this run is of the diffusion family, not gan"),
    ("diffusion", "no_such_field=1", "unknown key"),
    ("gan", "g_learning_rate=0.1", "its sampler fields are truncation_psi"),
    ("vae", "learning_rate=0.1", "it has no sampler fields"),
    ("autoregressive", "top_k=2.5", "AutoregressiveConfig.top_k is int; give a whole number"),
    ("diffusion", "guidance_scale", "write FIELD=VALUE"),
])
def test_sample_set_takes_sampler_fields_only(tmp_path, capsys, family, setting, message):
    from experiments.sample import main as sample_main

    run = _fake_run(tmp_path, family)
    assert sample_main([run, "--set", setting, "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_sample_settings_are_typed():
    from experiments.sample import sampler_settings
    from models import get_family

    diffusion = get_family("diffusion")
    assert sampler_settings(diffusion, {"guidance_scale": "3", "sampling_steps": "20",
                                        "sampler": "ddpm", "diffusion.ddim_eta": "0.5"}) == {
        "guidance_scale": 3.0, "sampling_steps": 20, "sampler": "ddpm", "ddim_eta": 0.5}
    # values from Python (tests, notebooks) are checked the same way
    assert sampler_settings(diffusion, {"guidance_scale": 2}) == {"guidance_scale": 2.0}
    with pytest.raises(ConfigError, match="not a sampler field"):
        sampler_settings(diffusion, {"learning_rate": 0.1})
    assert sampler_settings(get_family("autoregressive"), {"top_k": "4", "temperature": "0.5"}
                            ) == {"top_k": 4, "temperature": 0.5}


# ---------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_set_trains_its_own_run(tmp_path, capsys):
    """A real smoke run with --set: trained with the value (its config.json and the model
    built from it say so), in its own folder, beside the plain run; sampled from again."""
    from experiments.runs import load_run
    from experiments.sample import main as sample_main

    out = tmp_path / "o"
    code, captured = _main(tmp_path, capsys, *VAE, "--set", "vae.widths=16,32,64")
    assert code == 0, captured.err
    run = out / "runs" / "vae-elbo-b8-z128-s0+widths=16,32,64"
    assert (run / "metrics.json").exists() and (run / "samples.npz").exists()
    loaded = load_run(str(run))
    assert loaded.config.widths == (16, 32, 64)
    assert sample_main([str(run), "--n", "4", "--out", str(tmp_path / "g.png")]) == 0
    assert os.listdir(out / "runs") == ["vae-elbo-b8-z128-s0+widths=16,32,64"]
    assert "†1" in (out / "table_3_1.md").read_text()
