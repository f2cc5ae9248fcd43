"""The plan before training (run_all.py --plan), the rehearsal (--max-steps) and the
benchmarks that check them (benchmarks/rehearse.py, benchmarks/gpu_check.py --tiny)."""
import csv
import json
import os
import subprocess
import sys
import time
import types

import pytest

import run_all
from experiments import forecast, runner
from experiments.options import default_out
from experiments.profiles import get_profile
from experiments.tables import Row

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
slow = pytest.mark.slow


def _run(*args, timeout=900, script="run_all.py"):
    return subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


# ------------------------------------------------------------------ the plan
def test_plan_of_a_selection_trains_nothing_and_writes_its_tables(tmp_path):
    out = tmp_path / "out"
    proc = _run("--profile", "smoke", "--only", "vae/elbo@128", "gan/hinge@128",
                "diffusion/mse", "--dataset", "synthetic", "--out", str(out), "--plan",
                "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (out / "runs").exists()  # nothing trained, no run folder
    plan = json.loads((out / "plan.json").read_text())
    names = [row["name"] for row in plan["rows"]]
    # the two diffusion rows share nothing (latents 128 and 2048): each stage once
    assert names.count("diffusion-autoencoder-z128-s0") == 1
    assert {"vae-elbo-b8-z128-s0", "gan-hinge-b8-z128-s0", "diffusion-mse-b8-z128-s0",
            "diffusion-mse-b8-z2048-s0"} <= set(names)
    for row in plan["rows"]:
        assert row["params"] > 0 and row["forward_flops_per_image"] > 0
        assert row["train_flops_per_image"] >= 2 * row["forward_flops_per_image"]
        assert row["steps"] == 4 and row["flops"]["total"] == pytest.approx(
            sum(v for k, v in row["flops"].items() if k != "total"))
        assert row["activation_bytes_per_example"] > 0 and row["state_bytes"] > 0
        for key in ("t4", "a100_40", "a100_80", "h100"):
            device = row["accelerators"][key]
            assert device["hours"] > 0 and device["fits"] is True
        assert row["this_machine"]["seconds_per_step"] > 0
    assert plan["header"]["precision_requested"] == "auto"
    assert plan["totals"]["runs"] == 4 and plan["totals"]["stages"] == 2
    md = (out / "plan.md").read_text()
    for text in ("float_operation", "data sheet", "t4-tensor-core-datasheet",
                 "nvidia-a100-datasheet", "tensor-core-gpu-datasheet", "30% of",
                 "get_memory_info", "## Totals", "gan-hinge-b8-z128-s0"):
        assert text in md, text
    assert "gan-hinge-b8-z128-s0" in proc.stdout and "total (4 runs" in proc.stdout


def test_max_steps_below_one_is_refused_in_one_line(capsys):
    for value in ("0", "-3"):
        with pytest.raises(SystemExit) as exc:
            run_all.parse_args(["--max-steps", value])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert f"--max-steps {value}: give a positive number" in err


def test_a_rehearsal_is_planned_apart_from_every_result(tmp_path):
    profile = get_profile("smoke")
    row = Row(table="table_3_1", family="vae", model="VAE", loss="elbo", batch_size=128,
              latent_size=128)
    real = runner.plan_run(row, 0, profile, dataset="synthetic", image_size=32,
                           out_dir=str(tmp_path))
    rehearsal = runner.plan_run(row, 0, profile, dataset="synthetic", image_size=32,
                                out_dir=str(tmp_path), max_steps=2)
    assert rehearsal.name == "vae-elbo-b8-z128-s0-rehearsal2" != real.name
    assert rehearsal.identity()["max_steps"] == 2 and "max_steps" not in real.identity()
    assert rehearsal.train_config.val_batches == 1  # smoke's 1, at most max_steps
    assert rehearsal.n_samples <= runner.REHEARSAL_SAMPLES
    assert default_out("paper", "cifar100", max_steps=5).endswith(
        os.path.join("paper", "cifar100-rehearsal"))
    assert default_out("paper", "cifar100") == os.path.join("reports", "paper", "cifar100")
    # a two-stage family: the shared first stage is a rehearsal's too
    diffusion = runner.plan_run(Row(table="table_3_1", family="diffusion", model="SD",
                                    loss="mse", batch_size=128, latent_size=128), 0, profile,
                                dataset="synthetic", image_size=32, out_dir=str(tmp_path),
                                max_steps=1)
    assert [s.name for s in diffusion.stages] == ["diffusion-autoencoder-z128-s0-rehearsal1"]
    assert diffusion.stages[0].identity()["max_steps"] == 1


@slow
def test_a_rehearsal_is_never_a_row_of_a_real_table(tmp_path):
    out = tmp_path / "out"
    common = ("--profile", "smoke", "--dataset", "synthetic", "--out", str(out),
              "--metrics", "none", "--quiet", "--tables", "table_3_1")
    proc = _run(*common, "--only", "vae/elbo@128", "--max-steps", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.listdir(out / "runs") == ["vae-elbo-b8-z128-s0-rehearsal1"]
    history = (out / "runs" / "vae-elbo-b8-z128-s0-rehearsal1" / "history.csv").read_text()
    assert len(history.strip().splitlines()) == 2  # the header and one epoch of 1 step
    table = json.loads((out / "table_3_1.json").read_text())
    assert table["title"].startswith("REHEARSAL") and "REHEARSAL" in table["context"]
    assert "REHEARSAL" in (out / "table_3_1.md").read_text()
    # a real run into the same folder: its table holds its own row only
    proc = _run(*common, "--only", "vae/elbo@2048")
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = json.loads((out / "table_3_1.json").read_text())
    assert not table["title"].startswith("REHEARSAL")
    assert [(r["family"], r["latent_size"]) for r in table["rows"]] == [("vae", 2048)]
    # and the real run of the rehearsed row trains afresh, never resuming the rehearsal
    proc = _run(*common, "--only", "vae/elbo@128")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "vae-elbo-b8-z128-s0 " in proc.stdout and "(to run)" in proc.stdout
    assert sorted(os.listdir(out / "runs")) == ["vae-elbo-b8-z128-s0",
                                                "vae-elbo-b8-z128-s0-rehearsal1",
                                                "vae-elbo-b8-z2048-s0"]
    rows = json.loads((out / "table_3_1.json").read_text())["rows"]
    assert len(rows) == 2 and all(r["seeds"] == 1 for r in rows)


# ------------------------------------------------------------------ the figures
def _cost(state_gb, act_mb):
    return types.SimpleNamespace(state_bytes=state_gb * 1e9,
                                 activation_bytes=lambda: act_mb * 1e6)


def test_a_batch_that_does_not_fit_says_what_fixes_it():
    t4, h100 = forecast.ACCELERATORS[0], forecast.ACCELERATORS[-1]
    fits = forecast._device_figures(_cost(1.0, 10.0), 128, 1e15, "float16", t4)
    assert fits["fits"] and fits["peak_gb"] == pytest.approx(1.0 + 0.005 * 128)
    assert fits["hours"] == pytest.approx(1e15 / (65e12 * forecast.UTILISATION) / 3600)
    # 2048 x 20 MB / 2 = 20.5 GB over 14.4 usable: accumulate 2 fits (10.2 + 1)
    big = forecast._device_figures(_cost(1.0, 20.0), 2048, 1e15, "float16", t4)
    assert not big["fits"] and big["fix"].startswith("--accumulate 2")
    # float32 on an H100: half precision is offered beside accumulation
    f32 = forecast._device_figures(_cost(1.0, 100.0), 2048, 1e15, "float32", h100)
    assert not f32["fits"] and "--accumulate" in f32["fix"] and "--precision bfloat16" in f32["fix"]
    state = forecast._device_figures(_cost(20.0, 1.0), 64, 1e15, "float16", t4)
    assert not state["fits"] and "the state alone needs 20.0 GB" in state["fix"]


def test_the_profiler_count_includes_einsum_and_both_branches_of_a_cond():
    import tensorflow as tf

    @tf.function(autograph=False)
    def fn(a, b, p):
        x = tf.einsum("bij,bjk->bik", a, b)  # 2 x 4 x 8 x 16 x 32 = 32768
        return tf.cond(p, lambda: tf.matmul(x[0], tf.transpose(x[0])),  # 2 x 8 x 32 x 8 = 4096
                       lambda: x[0] + 1.0)  # 8 x 32 = 256
    graph = fn.get_concrete_function(tf.TensorSpec([4, 8, 16]), tf.TensorSpec([4, 16, 32]),
                                     tf.TensorSpec([], tf.bool)).graph
    assert forecast.graph_flops(graph) == 32768
    assert forecast.nested_graph_flops(graph, then_weight=0.25) == pytest.approx(
        32768 + 0.25 * 4096 + 0.75 * 256)


@slow
def test_the_inception_count_is_the_profilers():
    import tensorflow as tf
    from metrics.inception import build_fid_inception

    flops = forecast.forward_flops(build_fid_inception(), [tf.zeros([1, 299, 299, 3])])
    assert flops == pytest.approx(forecast.INCEPTION_FLOPS, rel=0.002)


@slow
def test_the_paper_grid_is_planned_in_under_two_minutes(tmp_path):
    started = time.perf_counter()
    proc = _run("--out", str(tmp_path / "paper"), "--plan", "--quiet", "--tables",
                "table_3_1", "table_3_2")
    seconds = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    plan = json.loads((tmp_path / "paper" / "plan.json").read_text())
    assert plan["totals"]["runs"] == 24 and plan["totals"]["stages"] == 4
    assert seconds < 120 or os.getloadavg()[0] > os.cpu_count(), (
        f"{seconds:.0f} s on an idle machine")


# ------------------------------------------------------------------ the benchmarks
@slow
def test_the_rehearsal_counts_agree_with_the_plan(tmp_path):
    out = tmp_path / "rehearsal.json"
    proc = _run("--profile", "smoke", "--out", str(out), script="benchmarks/rehearse.py")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["flops_within_tolerance"] and 0 < record["utilisation"]
    assert [s["name"] for s in record["stages"]] == [
        "vae-elbo-b8-z128-s0", "autoregressive-tokenizer-z128-s0",
        "autoregressive-cross_entropy-b8-z128-s0", "gan-wasserstein_gp-b8-z128-s0",
        "diffusion-autoencoder-z128-s0", "diffusion-mse-b8-z128-s0"]
    for stage in record["stages"]:
        assert abs(stage["flops_ratio"] - 1) <= 0.10, stage["name"]
        assert stage["seconds_per_step"] > 0
        assert stage["activation_bytes_per_example_measured"] > 0, stage["name"]


def test_gpu_check_tiny_runs_on_the_cpu_and_writes_its_table(tmp_path):
    out = tmp_path / "gpu_check.csv"
    proc = _run("--tiny", "--only", "vae/elbo@128", "gan/hinge@128", "--out", str(out),
                script="benchmarks/gpu_check.py")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert [(r["row"], r["stage"]) for r in rows] == [
        ("vae-elbo-b8-z128-s0", "model"), ("gan-hinge-b8-z128-s0", "model"),
        ("FID Inception-v3", "features")]
    for r in rows:
        assert r["device"] == "CPU" and float(r["images_per_second"]) > 0
        assert r["precision"] == "float32" and r["xla"] == "False"
    assert float(rows[0]["peak_memory_gb"]) > 0 and int(rows[0]["steps"]) == 2
    assert "weights" in rows[-1]["note"]
    assert "images_per_second" in proc.stdout
