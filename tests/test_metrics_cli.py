"""`python -m metrics fid A B` and the command line's answers to bad input (issues 24, 25).

Small and fast: a few dozen images of a committed run's samples.npz, the committed
Fashion-MNIST evaluator (no Inception weights, no training), the first images of the train
split as reference.
"""
from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from metrics.__main__ import EXIT_BAD_INPUT, main
from metrics.errors import MetricsError

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "reports" / "quick" / "fashion_mnist" / "runs" / "vae-elbo-b128-z128-s0"
FIRST_STAGE = ROOT / "reports" / "quick" / "fashion_mnist" / "runs" / "autoregressive-tokenizer-z128-s1"
EVALUATOR_LABEL = "evaluator:fashion_mnist-32x32x1:acc0.9186:556199026dca"


def _samples(n=None) -> np.ndarray:
    with np.load(RUN / "samples.npz", allow_pickle=False) as npz:
        images = npz["images"]
    return images if n is None else images[:n]


def _png_folder(folder: Path, images: np.ndarray, mode=None) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        (picture.convert(mode) if mode else picture).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture(autouse=True)
def _empty_cache(tmp_path, monkeypatch):
    """No Inception weights at hand (auto picks the evaluator), nothing of the user's cache."""
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """Two tiny folders of PNGs (gray, 32x32, from the run's samples) and their npz."""
    base = tmp_path_factory.mktemp("sets")
    images = _samples(40)
    np.savez(base / "a.npz", images=images[:16])
    return {"a": _png_folder(base / "a", images[:16]), "b": _png_folder(base / "b", images[16:40]),
            "a.npz": base / "a.npz", "base": base}


def _run_cli(*args, env_extra=None, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "metrics", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


# --------------------------------------------------------------------------------------
# D. Fast help, TensorFlow after parsing
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["--help"], ["fid", "--help"], ["score", "--help"]])
def test_help_answers_without_tensorflow(args):
    code = ("import sys, time; t = time.perf_counter()\n"
            "from metrics.__main__ import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "print('TF', 'tensorflow' in sys.modules, time.perf_counter() - t)")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    wall = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    assert "exit status:" in done.stdout and "2  bad input" in done.stdout  # codes documented
    flag, imported, seconds = done.stdout.split()[-3:]
    assert imported == "False"  # TensorFlow (about 15 s to import) is not loaded for --help
    assert float(seconds) < 1.0, seconds
    assert wall < 10  # the interpreter's start on a busy machine included


def test_importing_the_package_loads_no_tensorflow():
    code = ("import sys, metrics, metrics.rescore, metrics.imagesets\n"
            "assert metrics.RESULT_KEYS and callable(metrics.compute_metrics)\n"
            "print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.split() == ["False"], done.stderr


# --------------------------------------------------------------------------------------
# A. Metrics between two sets of images
# --------------------------------------------------------------------------------------
def test_fid_of_two_png_folders_names_network_counts_and_preprocessing(sets, capsys):
    assert main(["fid", str(sets["a"]), str(sets["b"]), "--quiet", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["network"] == EVALUATOR_LABEL and len(result["network_sha256"]) == 64
    assert result["fid_name"] == "fd_eval" and result["is_name"] == "is_eval"
    a, b = result["sets"]
    assert (a["n_images"], b["n_images"], a["kind"]) == (16, 24, "folder")
    assert "fed as they are (32x32x1)" in a["preprocessing"]
    assert result["fid"] > 0 and np.isfinite(result["kid"])
    assert 0 <= result["precision"] <= 1 and 0 <= result["recall"] <= 1
    assert a["is"] >= 1 and b["is"] >= 1  # the evaluator has class logits
    # the same images as an .npz: the same numbers
    assert main(["fid", str(sets["a.npz"]), str(sets["b"]), "--quiet", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    for key in ("fid", "kid", "precision", "recall"):
        assert again[key] == pytest.approx(result[key], rel=1e-9, abs=1e-12), key
    # the text form says the same, with the names of the evaluator's metrics
    assert main(["fid", str(sets["a"]), str(sets["b"]), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert EVALUATOR_LABEL in text and "16 images" in text and "24 images" in text
    assert text.count("preprocessing:") == 2 and "fd_eval" in text and "is_eval A" in text


def test_sizes_and_channels_are_converted_and_said(sets, tmp_path, capsys):
    from metrics.imagesets import compare_sets

    rgb28 = _png_folder(tmp_path / "rgb28", np.repeat(_samples(12)[:, 2:30, 2:30], 3, axis=-1))
    rgba = _png_folder(tmp_path / "rgba", _samples(12), mode="RGBA")
    result = compare_sets(rgb28, rgba, progress=False)
    a, b = result["sets"]
    assert "RGB averaged to gray" in a["preprocessing"] and "28x28 -> 32x32" in a["preprocessing"]
    assert "alpha channel dropped in 12" in b["read"]
    assert np.isfinite(result["fid"])


def test_the_inception_says_how_it_converts():
    from metrics.features import FeatureNetwork
    from metrics.imagesets import ImageSet, Network

    net = Network("inception", FeatureNetwork("inception-2015-12-05", "k", 2048, 1008, None),
                  None, "")
    gray = ImageSet("A", Path("a"), "npz", 8, collections.Counter({(28, 28, 1): 8}), channels=1)
    assert net.preprocessing(gray) == ("gray repeated to RGB, resized 28x28 -> 299x299 (TF1 "
                                       "bilinear, as the 2015 graph)")
    assert net.names() == ("fid", "is")


def test_saved_statistics_give_the_same_numbers(sets, tmp_path, capsys):
    stats = tmp_path / "b_stats.npz"
    assert main(["fid", str(sets["b"]), "--save-stats", str(stats), "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["saved"] == str(stats)
    assert stats.is_file() and Path(f"{stats}.sha256").is_file()
    with np.load(stats, allow_pickle=False) as npz:  # no pickles in what we write either
        meta = json.loads(str(npz["meta"]))
        assert npz["mu"].shape == (64,) and npz["sigma"].shape == (64, 64)
        assert npz["features"].shape == (24, 64) and int(npz["n_samples"]) == 24
    assert meta["network"] == EVALUATOR_LABEL and len(meta["weights_sha256"]) == 64
    assert main(["fid", str(sets["a"]), str(sets["b"]), "--quiet", "--json"]) == 0
    direct = json.loads(capsys.readouterr().out)
    assert main(["fid", str(sets["a"]), str(stats), "--quiet", "--json"]) == 0
    via_stats = json.loads(capsys.readouterr().out)
    assert via_stats["sets"][1]["kind"] == "stats" and via_stats["sets"][1]["n_images"] == 24
    for key in ("fid", "kid", "kid_subset_std", "precision", "recall"):
        assert via_stats[key] == pytest.approx(direct[key], rel=1e-9, abs=1e-12), key
    assert via_stats["sets"][1]["is"] == pytest.approx(direct["sets"][1]["is"])
    # both sides statistics: no network is loaded, the numbers stay
    stats_a = tmp_path / "a_stats.npz"
    assert main(["fid", str(sets["a"]), "--save-stats", str(stats_a), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["fid", str(stats_a), str(stats), "--quiet", "--json"]) == 0
    both = json.loads(capsys.readouterr().out)
    assert both["fid"] == pytest.approx(direct["fid"], rel=1e-9)


def test_fid_gives_the_numbers_metrics_score_gives(tmp_path, monkeypatch):
    """A run's samples against the train split's first images: `fid` equals `score`."""
    from data import open_dataset
    from metrics.imagesets import compare_sets
    from metrics.rescore import rescore_run

    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"  # the committed run, scored on 200 samples against 1,500 images
    run.mkdir()
    recorded = json.loads((RUN / "metrics.json").read_text())
    config = json.loads((RUN / "config.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**recorded, "n_samples": 200}))
    (run / "config.json").write_text(json.dumps({**config, "train_examples": 1500}))
    np.savez(run / "samples.npz", images=_samples(200))
    _, by_score = rescore_run(run, cache_dir=tmp_path / "cache", progress=False)
    train, _ = open_dataset("fashion_mnist", "train", image_size=32, channels=1,
                            limit=1500).arrays()
    np.savez(tmp_path / "train.npz", images=train)
    by_fid = compare_sets(run / "samples.npz", tmp_path / "train.npz", progress=False)
    assert by_fid["network"] == by_score["metric_network"]
    assert by_fid["network_sha256"] == by_score["metric_network_sha256"]
    for key in ("fid", "kid", "kid_subset_std", "precision", "recall"):
        assert by_fid[key] == pytest.approx(by_score[key], rel=1e-6, abs=1e-9), key
    assert by_fid["sets"][0]["is"] == pytest.approx(by_score["is"], rel=1e-6)
    assert by_fid["sets"][0]["is_split_std"] == pytest.approx(by_score["is_split_std"], rel=1e-6)


@pytest.mark.slow
def test_fid_of_committed_samples_against_the_train_split_gives_the_recorded_fd_eval(tmp_path):
    """The committed run's 2,000 samples against all 60,000 train images (about a minute)."""
    from data import open_dataset
    from metrics.imagesets import compare_sets

    train, _ = open_dataset("fashion_mnist", "train", image_size=32, channels=1).arrays()
    np.savez(tmp_path / "train.npz", images=train)
    result = compare_sets(RUN / "samples.npz", tmp_path / "train.npz", progress=False)
    recorded = json.loads((RUN / "metrics.json").read_text())
    assert result["network_sha256"] == recorded["metric_network_sha256"]
    for key in ("fid", "kid", "precision", "recall"):
        assert result[key] == pytest.approx(recorded[key], rel=1e-4), key
    assert result["sets"][0]["is"] == pytest.approx(recorded["is"], rel=1e-4)


# --------------------------------------------------------------------------------------
# B. Bad input: one line, exit 2, before anything is scored
# --------------------------------------------------------------------------------------
def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _stats_file(path: Path, label: str, digest: str | None = None, dim: int = 64) -> Path:
    meta = {"network": label, **({"weights_sha256": digest} if digest else {})}
    np.savez(path, mu=np.zeros(dim), sigma=np.eye(dim), features=np.zeros((8, dim), np.float32),
             n_samples=np.int64(8), meta=np.array(json.dumps(meta)))
    return path


def _bad_run(tmp_path: Path, metrics_changes=None, config_changes=None, metrics_text=None):
    run = tmp_path / "runs" / RUN.name
    run.mkdir(parents=True)
    shutil.copy(RUN / "samples.npz", run / "samples.npz")
    recorded = json.loads((RUN / "metrics.json").read_text())
    config = json.loads((RUN / "config.json").read_text())
    for key, value in (config_changes or {}).items():
        target = config["identity"] if key in config["identity"] else config
        target[key] = value
    (run / "metrics.json").write_text(metrics_text if metrics_text is not None
                                      else json.dumps({**recorded, **(metrics_changes or {})}))
    (run / "config.json").write_text(json.dumps(config))
    return run


def _case_empty_folder(tmp, sets):
    (tmp / "empty").mkdir()
    return ["fid", tmp / "empty", sets["b"]], "holds no images"


def _case_unreadable_images(tmp, sets):
    folder = _png_folder(tmp / "mixed", _samples(6))
    _write(folder / "zz_garbage.png", b"not an image")
    _write(folder / "zz_truncated.png", (folder / "000.png").read_bytes()[:120])
    return ["fid", folder, sets["b"]], "2 of 8 image files cannot be read"


def _case_corrupt_npz(tmp, sets):
    return ["fid", _write(tmp / "x.npz", b"PK\x03\x04 truncated zip"), sets["b"]], \
        "is not a readable .npz"


def _case_pickled_npz(tmp, sets):
    np.savez(tmp / "p.npz", images=np.array([{"a": 1}], dtype=object))
    return ["fid", tmp / "p.npz", sets["b"]], "pickled objects, which are refused"


def _case_two_channels(tmp, sets):
    np.savez(tmp / "c2.npz", images=np.zeros((8, 32, 32, 2), np.uint8))
    return ["fid", sets["a"], tmp / "c2.npz"], "the networks convert only gray (1) and RGB (3)"


def _case_float_images(tmp, sets):
    np.savez(tmp / "f.npz", images=np.zeros((8, 32, 32, 1), np.float32))
    return ["fid", tmp / "f.npz", sets["b"]], "save uint8 pixels"


def _case_stats_of_another_evaluator(tmp, sets):
    stats = _stats_file(tmp / "s.npz", "evaluator:cifar10-32x32x3:acc0.9000:0123456789ab")
    return ["fid", sets["a"], stats], "not at hand"


def _case_stats_of_other_weights(tmp, sets):
    stats = _stats_file(tmp / "s.npz", EVALUATOR_LABEL, digest="0" * 64)
    return ["fid", sets["a"], stats], "holds statistics of"


def _case_stats_of_two_networks(tmp, sets):
    one = _stats_file(tmp / "s1.npz", EVALUATOR_LABEL)
    other = _stats_file(tmp / "s2.npz", "inception-2015-12-05", dim=64)
    return ["fid", one, other], "statistics of different networks"


def _case_stats_with_inception_asked(tmp, sets):
    stats = _stats_file(tmp / "s.npz", EVALUATOR_LABEL)
    return ["fid", sets["a"], stats, "--network", "inception"], "not of the network asked for"


def _case_save_stats_unwritable(tmp, sets):
    blocker = _write(tmp / "file", b"x")
    return ["fid", sets["a"], "--save-stats", blocker / "out.npz"], "is not a folder"


def _case_save_stats_over_images(tmp, sets):
    return ["fid", sets["a"], "--save-stats", sets["a.npz"]], "it is not overwritten"


def _case_fid_one_set(tmp, sets):
    return ["fid", sets["a"]], "needs two sets"


def _case_wrong_evaluator_path(tmp, sets):
    return ["fid", sets["a"], sets["b"], "--evaluator", tmp / "no" / "such"], "is not a folder"


def _case_inception_not_at_hand(tmp, sets):
    return ["fid", sets["a"], sets["b"], "--network", "inception"], "python -m metrics fetch"


def _case_score_negative_rtol(tmp, sets):
    return ["score", RUN, "--rtol", "-1"], "--rtol"


def _case_score_nan_rtol(tmp, sets):
    return ["score", RUN, "--rtol", "nan"], "--rtol"


def _case_score_unwritable_cache(tmp, sets):
    blocker = _write(tmp / "file", b"x")
    return ["score", RUN, "--cache-dir", blocker / "cache"], "pass a writable --cache-dir"


def _case_score_corrupt_samples(tmp, sets):
    run = _bad_run(tmp)
    _write(run / "samples.npz", b"\x93NUMPY garbage")
    return ["score", run], "is not a readable .npz"


def _case_score_metrics_json_list(tmp, sets):
    return ["score", _bad_run(tmp, metrics_text="[1, 2, 3]")], "not an object"


def _case_score_n_samples_text(tmp, sets):
    return ["score", _bad_run(tmp, {"n_samples": "2000"})], "n_samples is '2000'"


def _case_score_fid_text(tmp, sets):
    return ["score", _bad_run(tmp, {"fid": "6.9"})], "fid is '6.9'"


def _case_score_seed_float(tmp, sets):
    return ["score", _bad_run(tmp, {"seed": 0.5})], "seed is 0.5"


def _case_score_channels_wrong(tmp, sets):
    return ["score", _bad_run(tmp, config_changes={"channels": 4})], "channels is 4"


def _case_score_unscored_run(tmp, sets):
    run = _bad_run(tmp, {"metric_network": "none", "n_samples": 0})
    return ["score", run], "run_all.py ran it with --metrics none"


def _case_score_first_stage(tmp, sets):
    return ["score", FIRST_STAGE], "autoregressive-cross_entropy-b128-z128-s1"


def _case_score_samples_folder(tmp, sets):
    return ["score", RUN, "--samples", sets["a"]], "holds 16 images; the run was scored on 2000"


def _case_score_samples_other_shape(tmp, sets):
    np.savez(tmp / "big.npz", images=np.zeros((2000, 64, 64, 1), np.uint8))
    return ["score", RUN, "--samples", tmp / "big.npz"], "the run needs uint8 [N, 32, 32, 1]"


BAD = [_case_empty_folder, _case_unreadable_images, _case_corrupt_npz, _case_pickled_npz,
       _case_two_channels, _case_float_images, _case_stats_of_another_evaluator,
       _case_stats_of_other_weights, _case_stats_of_two_networks,
       _case_stats_with_inception_asked, _case_save_stats_unwritable,
       _case_save_stats_over_images, _case_fid_one_set, _case_wrong_evaluator_path,
       _case_inception_not_at_hand, _case_score_unscored_run,
       _case_score_negative_rtol, _case_score_nan_rtol, _case_score_unwritable_cache,
       _case_score_corrupt_samples, _case_score_metrics_json_list, _case_score_n_samples_text,
       _case_score_fid_text, _case_score_seed_float, _case_score_channels_wrong,
       _case_score_first_stage, _case_score_samples_folder, _case_score_samples_other_shape]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.__name__[6:])
def test_bad_input_is_one_line_and_exit_2_before_scoring(case, sets, tmp_path, capsys,
                                                         monkeypatch):
    import metrics
    import metrics.features

    def scoring(*args, **kwargs):
        raise AssertionError("scored before refusing bad input")

    monkeypatch.setattr(metrics.features, "collect", scoring)
    monkeypatch.setattr(metrics, "compute_metrics", scoring)
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    args, phrase = case(tmp_path, sets)
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:  # argparse's own checks
        code = exit_.code
    captured = capsys.readouterr()
    assert code == EXIT_BAD_INPUT, captured
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert phrase in lines[0], lines[0]
    assert captured.out == ""


def test_a_metric_that_differs_exits_1(tmp_path, monkeypatch, capsys):
    import metrics.rescore as rescore

    recorded = json.loads((RUN / "metrics.json").read_text())
    monkeypatch.setattr(rescore, "score_run",
                        lambda loaded, **_: (recorded, {**recorded, "fid": recorded["fid"] * 2}))
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    assert main(["score", str(RUN), "--quiet"]) == 1
    assert "differs from the recorded metrics.json beyond rtol" in capsys.readouterr().out


def test_one_line_on_the_real_stderr_native_output_included(sets, tmp_path):
    """In a fresh process (TensorFlow's C++ log lines reach the file descriptor, not
    sys.stderr): statistics of other weights are refused once the evaluator was built
    (TensorFlow loaded and started); a bad metrics.json before TensorFlow loads."""
    stats = _stats_file(tmp_path / "s.npz", EVALUATOR_LABEL, digest="0" * 64)
    done = _run_cli("fid", sets["a"], stats, "--quiet")
    assert done.returncode == EXIT_BAD_INPUT, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("error: B (") and "holds statistics of" in done.stderr
    run = _bad_run(tmp_path, {"n_samples": [2000]})
    done = _run_cli("score", run, env_extra={"GENBENCH_CACHE": str(tmp_path / "cache")})
    assert (done.returncode, len(done.stderr.splitlines())) == (EXIT_BAD_INPUT, 1), done.stderr
    assert "n_samples is [2000]" in done.stderr


# --------------------------------------------------------------------------------------
# C. load_evaluator fails for a wrong path
# --------------------------------------------------------------------------------------
def test_load_evaluator_refuses_a_wrong_path(tmp_path):
    import metrics
    from metrics.evaluator import cached_evaluator, load_evaluator, shipped_dir

    with pytest.raises(MetricsError, match="is not a folder"):
        metrics.load_evaluator(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "info.json").write_text("{}")
    with pytest.raises(MetricsError, match="weights.weights.h5 missing"):
        load_evaluator(tmp_path / "half")
    assert cached_evaluator(tmp_path / "nowhere") is None  # the cache: "none yet" is None
    model, info = load_evaluator(shipped_dir("fashion_mnist", (32, 32, 1)))
    assert info["dataset"] == "fashion_mnist"
