"""The bad-input campaign: what a hostile but realistic user does to run_all.py, and what
must happen (docs/bad-inputs.md, "What happens when").

CASES is the campaign as data: one Case per bad input or fault, each naming the cause it
covers (its issue, 10 or 25, and the cause's number there) and what the command must do:
its exit status, a phrase of its message, whether anything may train, and any check of the
files afterwards. To add a case, append a Case; ``setup`` prepares the scene (earlier
runs, damaged files, environment) and may return extra command-line arguments. Causes that
sit below run_all.py (a data reader, the cache, a file writer) and those of
``python -m experiments.sample`` have their own tests further down.

Every command is ``run_all.main`` in this process on the smoke profile and the synthetic
dataset (or Fashion-MNIST where the cause is about it), so a case takes seconds.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import json
import os
import pickle
import shutil
import stat
import time
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

import run_all

FASHION = "/usr/share/datasets/fashion-mnist"
RUN = "vae-elbo-b8-z128-s0"  # the run of BASE's selector
BASE = ["--profile", "smoke", "--only", "vae/elbo@128", "--dataset", "synthetic",
        "--metrics", "none", "--quiet"]
needs_fashion = pytest.mark.skipif(not os.path.isdir(FASHION),
                                   reason=f"Debian's dataset-fashion-mnist is not installed "
                                          f"({FASHION} missing)")
slow = pytest.mark.slow  # a case that trains for more than ~10 s (pytest -m "not slow")


@dataclasses.dataclass
class Case:
    item: int  # the cause's number in issue 10
    name: str
    args: list = dataclasses.field(default_factory=list)  # after BASE (later flags win)
    setup: Callable | None = None  # (tmp_path, monkeypatch) -> extra args or None
    code: int = run_all.EXIT_BAD_INPUT
    message: str = ""  # must appear in stderr
    trains: bool = False  # may the command train (or finish) a run?
    check: Callable | None = None  # (tmp_path, stdout, stderr) -> None, after the command
    marks: tuple = ()
    issue: int = 10  # the issue that numbers ``item`` (10, or 25: "nothing lost, ...")


def main(tmp_path, *args, capsys=None):
    """run_all.main with --out tmp_path/o; (exit status, stdout, stderr)."""
    argv = [*BASE, "--out", str(tmp_path / "o"), *args]
    try:
        code = run_all.main(argv)
    except SystemExit as exit_:  # argparse's errors
        code = exit_.code
    except KeyboardInterrupt:  # escaping, it would stop pytest itself
        pytest.fail("KeyboardInterrupt escaped run_all.main (a traceback for the user)")
    if capsys is None:
        return code, "", ""
    out, err = capsys.readouterr()
    return code, out, err


def _finished(tmp_path, *args):
    """An earlier, successful command in the same --out (part of a case's setup)."""
    code, _, _ = main(tmp_path, *args)
    assert code == 0, f"setup command {args} failed"


def run_dir(tmp_path, name=RUN):
    return tmp_path / "o" / "runs" / name


def _metrics(tmp_path, name=RUN):
    return json.loads((run_dir(tmp_path, name) / "metrics.json").read_text())


def _table(tmp_path, name="table_3_1"):
    with open(tmp_path / "o" / f"{name}.csv") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------- scene builders
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))


def _fashion_run_then(tmp_path, monkeypatch):
    _finished(tmp_path, "--dataset", "fashion_mnist", "--data-dir", FASHION)


def _smoke_run(tmp_path, monkeypatch):
    _finished(tmp_path)


def _scored_run(tmp_path, monkeypatch):
    _cache(tmp_path, monkeypatch)
    _finished(tmp_path)


# The quick and paper runs of the elbo@128 row share a folder name (batch 128); at 8
# pixels a quick run takes seconds.
TINY_QUICK = ["--profile", "quick", "--image-size", "8"]
TINY_PAPER = ["--profile", "paper", "--image-size", "8"]


def _quick_run(finished):
    def setup(tmp_path, monkeypatch):
        _finished(tmp_path, *TINY_QUICK)
        if not finished:
            (run_dir(tmp_path, "vae-elbo-b128-z128-s0") / "metrics.json").unlink()
    return setup


def _unfinished_run(tmp_path, monkeypatch):
    _finished(tmp_path)
    (run_dir(tmp_path) / "metrics.json").unlink()


def _remember_losses(tmp_path, monkeypatch):
    _finished(tmp_path)
    saved = _metrics(tmp_path)
    (tmp_path / "uninterrupted.json").write_text(json.dumps(saved))
    (run_dir(tmp_path) / "metrics.json").unlink()


def _same_losses_as_uninterrupted(tmp_path, out, err):
    before = json.loads((tmp_path / "uninterrupted.json").read_text())
    after = _metrics(tmp_path)
    assert after["resumed_from_step"] > 0  # it did resume, after its last epoch
    for key in ("train_loss", "val_loss", "steps"):
        assert after[key] == before[key], key


def _damage_checkpoint(how):
    def setup(tmp_path, monkeypatch):
        _remember_losses(tmp_path, monkeypatch)
        folder = run_dir(tmp_path) / "checkpoints"
        newest = max(int(p.name.split("-")[1].split(".")[0]) for p in folder.glob("ckpt-*.index"))
        data = sorted(folder.glob(f"ckpt-{newest}.data-*"))[0]
        index = folder / f"ckpt-{newest}.index"
        if how == "deleted data":
            data.unlink()
        elif how == "truncated data":
            data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
        else:
            index.write_bytes(index.read_bytes()[: index.stat().st_size // 2])
    return setup


def _recovered_from_older_checkpoint(tmp_path, out, err):
    _same_losses_as_uninterrupted(tmp_path, out, err)
    assert "is damaged" in out and "trying the one before" in out
    assert list((run_dir(tmp_path) / "checkpoints" / "damaged").glob("ckpt-*"))


def _write(relative, content: bytes):
    def setup(tmp_path, monkeypatch):
        _finished(tmp_path)
        path = run_dir(tmp_path) / relative
        if relative != "metrics.json":
            (run_dir(tmp_path) / "metrics.json").unlink()  # an unfinished run
        path.write_bytes(content)
    return setup


def _table_has_the_row_again(tmp_path, out, err):
    assert _metrics(tmp_path)["run"] == RUN  # rewritten whole
    assert [r["latent_size"] for r in _table(tmp_path)] == ["128"]
    assert "is damaged" in out


def _garbage_metrics_in_another_run(tmp_path, monkeypatch):
    _finished(tmp_path, "--only", "vae/elbo")
    (run_dir(tmp_path, "vae-elbo-b8-z2048-s0") / "metrics.json").write_text("[1, 2]")


def _both_rows_except_the_damaged(tmp_path, out, err):
    # the damaged run (not requested) is left out of the table, the suite carries on
    assert [r["latent_size"] for r in _table(tmp_path)] == ["128"]


def _both_rows_in_the_table(tmp_path, out, err):
    assert [r["latent_size"] for r in _table(tmp_path)] == ["128", "2048"]
    assert "complete" not in err


def _fake_stage(identity_dataset):
    """A shared first stage (as multi-stage families have) whose folder holds another
    dataset's stage: plans get it through the same StagePlan.identity() mechanism."""
    def setup(tmp_path, monkeypatch):
        import experiments.runner as runner

        folder = tmp_path / "o" / "runs" / "vae-autoencoder-z128-s0"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(
            {"identity": {"stage": "autoencoder", "dataset": "fashion_mnist"}}))

        class Stage:
            stage, run_dir, name = "autoencoder", str(folder), folder.name

            def identity(self):
                return {"stage": "autoencoder", "dataset": identity_dataset}

        real = runner.plan_run

        def plan_with_stage(*args, **kwargs):
            plan = real(*args, **kwargs)
            plan.stages = [Stage()]
            return plan

        monkeypatch.setattr(runner, "plan_run", plan_with_stage)
    return setup


def _stage_without_weights(tmp_path, monkeypatch):
    """A finished two-stage row whose shared first stage then lost its weights (as the
    committed first stages of seeds 1 and 2 ship their records only)."""
    _finished(tmp_path, "--only", "diffusion/mse@128")
    stage = run_dir(tmp_path, "diffusion-autoencoder-z128-s0")
    for part in ("checkpoints", "weights"):
        shutil.rmtree(stage / part, ignore_errors=True)


def _names_the_rows_on_the_stage(tmp_path, out, err):
    assert "diffusion-autoencoder-z128-s0/metrics.json" not in err  # one line names the folder
    assert "(diffusion-mse-b8-z128-s0)" in err, err  # the complete row built on it
    assert (run_dir(tmp_path, "diffusion-autoencoder-z128-s0") / "metrics.json").exists()


def _names(err, what):
    assert what in err.split("holds a", 1)[1], err


def _inception_file(kind):
    def setup(tmp_path, monkeypatch):
        _cache(tmp_path, monkeypatch)
        path = tmp_path / {"garbage": "weights.pth", "fake tgz": "inception-2015-12-05.tgz",
                           "truncated zip": "weights.pth", "empty state dict": "weights.pth",
                           "malicious": "weights.pth"}[kind]
        noise = np.random.default_rng(0).bytes(4096)
        if kind == "garbage":
            path.write_bytes(noise)
        elif kind == "fake tgz":
            path.write_bytes(b"\x1f\x8b\x08\x00" + noise[:512])
        else:
            with zipfile.ZipFile(path, "w") as archive:
                payload = (collections.OrderedDict() if kind != "malicious"
                           else _Exploit(str(tmp_path / "pwned")))
                archive.writestr("archive/data.pkl", pickle.dumps(payload, protocol=2))
                archive.writestr("archive/version", "3\n")
            if kind == "truncated zip":
                path.write_bytes(path.read_bytes()[:60])
        return ["--metrics", "inception", "--inception-weights", str(path)]
    return setup


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _not_pwned(tmp_path, out, err):
    assert not (tmp_path / "pwned").exists()


def _file_at(env):
    def setup(tmp_path, monkeypatch):
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        if env == "HOME":
            monkeypatch.delenv("GENBENCH_CACHE", raising=False)
            monkeypatch.setenv("HOME", str(blocker))
        else:
            monkeypatch.setenv("GENBENCH_CACHE", str(blocker))
        return ["--metrics", "evaluator"]
    return setup


def _out_is_a_file(below):
    def setup(tmp_path, monkeypatch):
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        return ["--out", str(blocker / "reports" if below else blocker)]
    return setup


def _read_only_out(tmp_path, monkeypatch):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; the file cases cover the check")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return ["--out", str(folder / "reports")]


def _offline_empty_data_dir(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    from data import catalog, tfds_source

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(tfds_source, "reachable", lambda *a, **k: False, raising=False)
    monkeypatch.setitem(catalog.SYSTEM_DIRS, "fashion_mnist", [])

    def no_download(self, *args, **kwargs):
        (tmp_path / "download-attempted").touch()
        raise OSError("offline")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_download)
    return ["--dataset", "fashion_mnist", "--data-dir", str(empty)]


def _no_download_no_leftovers(tmp_path, out, err):
    assert not (tmp_path / "download-attempted").exists()
    assert os.listdir(tmp_path / "empty") == []
    assert "train-images-idx3-ubyte.gz" in err and "DATA_DIR" in err


def _evaluator_run_then(damage):
    def setup(tmp_path, monkeypatch):
        _cache(tmp_path, monkeypatch)
        _finished(tmp_path, "--metrics", "evaluator")
        (run_dir(tmp_path) / "metrics.json").unlink()
        cache = tmp_path / "cache"
        if damage == "info.json":
            (info,) = cache.glob("evaluator/*/info.json")
            info.write_text("{ garbage")
        else:
            (stats,) = cache.glob("refstats/*.npz")
            stats.write_bytes(stats.read_bytes()[: stats.stat().st_size // 2])
        return ["--metrics", "evaluator"]
    return setup


def _cache_rebuilt(tmp_path, out, err):
    assert "is damaged" in err or "damaged" in out
    assert np.isfinite(_metrics(tmp_path)["fid"])
    (info,) = (tmp_path / "cache").glob("evaluator/*/info.json")
    json.loads(info.read_text())


def _interrupt_at_step(step):
    def setup(tmp_path, monkeypatch):
        from training import callbacks

        real = callbacks.Checkpointer.on_train_batch_end

        def interrupted(self, at, logs=None):
            real(self, at, logs)
            if at == step:
                raise KeyboardInterrupt
        monkeypatch.setattr(callbacks.Checkpointer, "on_train_batch_end", interrupted)
    return setup


def _one_line_then_resumes(tmp_path, out, err):
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "step 3" in lines[0] and "resume" in lines[0], err
    assert not (run_dir(tmp_path) / "metrics.json").exists()


def _tf_config(value):
    def setup(tmp_path, monkeypatch):
        monkeypatch.setenv("TF_CONFIG", value)
    return setup


def _celeba_folder(kind):
    """A --data-dir holding img_align_celeba/ with no JPEGs, or with a truncated one."""
    def setup(tmp_path, monkeypatch):
        from PIL import Image
        folder = tmp_path / "celeba" / "img_align_celeba"
        folder.mkdir(parents=True)
        if kind == "truncated":
            for k in (1, 2, 162771):
                Image.fromarray(np.full((218, 178, 3), 40 * k % 255, np.uint8)).save(
                    folder / f"{k:06d}.jpg")
            data = (folder / "000002.jpg").read_bytes()
            (folder / "000002.jpg").write_bytes(data[:len(data) // 3])
        return ["--only", "faces/faithful", "--dataset", "celeb_a", "--data-dir",
                str(tmp_path / "celeba")]
    return setup


# ----------------------------------------------------------------- issue 25's scenes
def _damage_index(how):
    """An unfinished run whose ``checkpoints/checkpoint`` (the index TensorFlow reads to
    find the newest checkpoint) is damaged, its ``ckpt-N`` files intact."""
    def setup(tmp_path, monkeypatch):
        _remember_losses(tmp_path, monkeypatch)
        index = run_dir(tmp_path) / "checkpoints" / "checkpoint"
        if how == "garbage":
            index.write_bytes(b"garbage\x00{{ not a CheckpointState")
        elif how == "empty":
            index.write_bytes(b"")
        else:
            index.unlink()
    return setup


def _resumed_from_the_newest_checkpoint(tmp_path, out, err):
    _same_losses_as_uninterrupted(tmp_path, out, err)  # resumed_from_step > 0, same losses
    assert "checkpoint is damaged" in out and "rebuilt it" in out, out


def _small_folder(tmp_path, monkeypatch):
    """A folder: dataset of 40 images: about 10% held out, fewer than one batch of 8."""
    from PIL import Image

    from data.folder import split_of

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), np.uint8)).save(folder / f"{i:02d}.png")
    assert 1 <= sum(split_of(f"{i:02d}.png") == "test" for i in range(40)) < 8
    return ["--dataset", f"folder:{folder}"]


def _disk_full_at_checkpoint(tmp_path, monkeypatch):
    """The disk fills while the trainer saves a checkpoint: TensorFlow fails as it does on
    a full disk (seen on a 600 kB tmpfs): a ResourceExhaustedError naming the shard, after
    making the checkpoint's temporary folder ckpt-N_temp/."""
    import tensorflow as tf

    def full(self, checkpoint_number=None, **kwargs):
        temp = os.path.join(self.directory, f"ckpt-{checkpoint_number}_temp")
        os.makedirs(temp)
        raise tf.errors.ResourceExhaustedError(
            None, None, f"{temp}/part-00000-of-00001.data-00000-of-00001.tempstate1; No space "
                        f"left on device [Op:SaveV2]")
    monkeypatch.setattr(tf.train.CheckpointManager, "save", full)


def _disk_full_writing(folder_name, ending):
    """The disk fills when a file ending in ``ending`` is written in the folder named
    ``folder_name``: its temporary file is /dev/full, which fails every write with the
    kernel's ENOSPC."""
    def setup(tmp_path, monkeypatch):
        if not os.path.exists("/dev/full"):
            pytest.skip("no /dev/full on this system")
        from common import files

        real = files.tempfile.mkstemp

        def mkstemp(suffix=None, prefix=None, dir=None, text=False):
            fd, tmp = real(suffix=suffix, prefix=prefix, dir=dir, text=text)
            if os.path.basename(dir or "") == folder_name and tmp.endswith(ending):
                os.close(fd)
                os.remove(tmp)
                os.symlink("/dev/full", tmp)
                fd = os.open(os.devnull, os.O_RDONLY)
            return fd, tmp
        monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)
    return setup


def _one_line_nothing_lost(folder):
    def check(tmp_path, out, err):
        assert "Traceback" not in err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        assert f"holding {folder(tmp_path)} (" in lines[0] and " free)" in lines[0], lines[0]
        assert "nothing was lost" in lines[0]
        checkpoints = run_dir(tmp_path) / "checkpoints"
        assert not list(checkpoints.glob("*_temp")) if checkpoints.is_dir() else True
        assert not list((tmp_path / "o").rglob(".tmp-*"))
    return check


def _names_the_flag(tmp_path, out, err):
    assert "data_dir" not in err.replace("(Python: data_dir=None)", ""), err


CASES = [
    # 1. A finished run is reused only if it is the run asked for.
    Case(1, "synthetic over a Fashion-MNIST run", setup=_fashion_run_then,
         message="dataset: recorded 'fashion_mnist', requested 'synthetic'",
         marks=(needs_fashion, slow)),
    Case(1, "paper profile over a quick run", TINY_PAPER, setup=_quick_run(finished=True),
         message="profile: recorded 'quick', requested 'paper'", marks=(slow,)),
    Case(1, "paper profile over an unfinished quick run", TINY_PAPER,
         setup=_quick_run(finished=False), message="profile: recorded 'quick', requested 'paper'",
         marks=(slow,)),
    Case(1, "another metric network over a scored run", ["--metrics", "evaluator"],
         setup=_scored_run, message="scored with metric network 'not computed'", marks=(slow,)),
    Case(1, "shared first-stage folder of another dataset", setup=_fake_stage("synthetic"),
         message="vae-autoencoder-z128-s0 holds a",
         check=lambda tmp_path, out, err: _names(err, "dataset")),
    Case(1, "a complete first stage without weights", ["--only", "diffusion/mae@128"],
         setup=_stage_without_weights, message="is complete but holds no weights",
         check=_names_the_rows_on_the_stage, marks=(slow,), issue=25),
    # 2. Rerunning a subset keeps the other rows.
    Case(2, "a subset rerun keeps the finished rows", ["--only", "vae/elbo@2048"],
         setup=_smoke_run, code=0, trains=True, check=_both_rows_in_the_table, marks=(slow,)),
    # 3. Resumed after its last epoch: the losses of an uninterrupted run, exactly.
    Case(3, "resumed after the last epoch", setup=_remember_losses, code=0, trains=True,
         check=_same_losses_as_uninterrupted, marks=(slow,)),
    # 4. Inception weights are loaded and checked before anything trains.
    *[Case(4, f"--inception-weights: {kind}", setup=_inception_file(kind),
           message="weights.pth" if kind != "fake tgz" else "inception-2015-12-05.tgz",
           check=_not_pwned)
      for kind in ("garbage", "truncated zip", "fake tgz", "empty state dict", "malicious")],
    # 5. An unwritable cache is found before anything trains.
    Case(5, "GENBENCH_CACHE is a file", setup=_file_at("GENBENCH_CACHE"),
         message="GENBENCH_CACHE"),
    Case(5, "HOME is not a folder, no GENBENCH_CACHE", setup=_file_at("HOME"),
         message="is not a folder; set GENBENCH_CACHE"),
    # 6. An unusable --out is found before anything trains.
    Case(6, "--out is a file", setup=_out_is_a_file(below=False), message="is not a folder"),
    Case(6, "--out below a file", setup=_out_is_a_file(below=True), message="is not a folder"),
    Case(6, "--out on a read-only folder", setup=_read_only_out, message="cannot write"),
    # 7, 8. Sizes that would exhaust memory are refused, saying the bound.
    Case(7, "--seeds 1e20", ["--seeds", str(10 ** 20)], message="give 1 to 100"),
    Case(8, "--image-size 65536", ["--image-size", "65536"], message="8 to 256 pixels"),
    Case(8, "--image-size 4", ["--image-size", "4"], message="8 to 256 pixels"),
    # 9. Offline with an empty --data-dir: fail fast, say where the files go, leave nothing.
    Case(9, "offline, empty --data-dir", setup=_offline_empty_data_dir,
         message="fashion-mnist.s3-website", check=_no_download_no_leftovers),
    # 10. A damaged newest checkpoint: resume from the one before.
    *[Case(10, f"checkpoint: {how}", setup=_damage_checkpoint(how), code=0, trains=True,
           check=_recovered_from_older_checkpoint,
           marks=(slow,) if how != "truncated index" else ())
      for how in ("deleted data", "truncated data", "truncated index")],
    # 11. A damaged metrics.json: that run is finished again; the others and the tables go on.
    Case(11, "garbage metrics.json", setup=_write("metrics.json", b"\x00garbage{"), code=0,
         trains=True, check=_table_has_the_row_again),
    Case(11, "metrics.json holds a JSON list", setup=_write("metrics.json", b"[1, 2, 3]"),
         code=0, trains=True, check=_table_has_the_row_again),
    Case(11, "garbage metrics.json in a run not asked for", setup=_garbage_metrics_in_another_run,
         code=0, check=_both_rows_except_the_damaged, marks=(slow,)),
    # 12. Damaged files of an unfinished run: name the file and what to do.
    Case(12, "garbage config.json", setup=_write("config.json", b"{\x00 not json"),
         message="config.json is damaged"),
    Case(12, "history.csv without an epoch column", setup=_write("history.csv", b"a,b\n1,2\n"),
         message="history.csv is damaged"),
    Case(12, "binary history.csv", setup=_write("history.csv", b"\xff\xfe\x00\x81garbage"),
         message="history.csv is damaged"),
    # 13. Damaged caches are verified and rebuilt.
    Case(13, "garbage evaluator info.json", setup=_evaluator_run_then("info.json"), code=0,
         trains=True, check=_cache_rebuilt, marks=(slow,)),
    Case(13, "truncated reference statistics", setup=_evaluator_run_then("refstats"), code=0,
         trains=True, check=_cache_rebuilt, marks=(slow,)),
    # 14. Ctrl-C: one line, where it stopped, exit 130.
    Case(14, "Ctrl-C during training", setup=_interrupt_at_step(3),
         code=run_all.EXIT_INTERRUPTED, trains=True, check=_one_line_then_resumes),
    # 15. A malformed TF_CONFIG is named.
    Case(15, "malformed TF_CONFIG", setup=_tf_config("{cluster: nope"), message="TF_CONFIG"),
    Case(15, "TF_CONFIG holding a list", setup=_tf_config("[1, 2]"), message="TF_CONFIG"),
    # 18. Thesis 003 (issue 9): modes, optimisers, CelebA files and step sizes are checked
    # before anything trains.
    Case(18, "unknown face GAN mode", ["--only", "faces/pretty"],
         message="unknown face GAN mode 'pretty'"),
    Case(18, "unknown optimiser", ["--only", "faces/faithful", "--optimizer", "lion"],
         message="unknown face GAN optimizer 'lion'"),
    Case(18, "CelebA folder without JPEGs", setup=_celeba_folder("empty"),
         message="holds no JPEGs"),
    Case(18, "a truncated CelebA JPEG", setup=_celeba_folder("truncated"),
         message="000002.jpg: cannot be read as a JPEG"),
    Case(18, "bilinear step size <= 0", ["--only", "bilinear", "--bilinear-eta", "0.5", "-0.1"],
         message="are not > 0"),
    # Issue 25. 2: a damaged checkpoints/checkpoint index, the ckpt-N files intact: resume
    # from the newest that reads back and say so (a run no longer restarts from step 0).
    *[Case(2, f"checkpoint index: {how}", setup=_damage_index(how), code=0, trains=True,
           check=_resumed_from_the_newest_checkpoint, issue=25,
           marks=(slow,) if how != "garbage" else ())
      for how in ("garbage", "empty", "deleted")],
    # 3. Every numeric option finite and in range (a table full of inf/nan was written).
    *[Case(3, f"--bilinear-eta {eta}", ["--only", "bilinear", "--bilinear-eta", eta],
           message="are not > 0 and <= 1", issue=25)
      for eta in ("inf", "nan", "1e300", "1.5")],
    # 6. A held-out split smaller than one batch: found up front, not after an epoch.
    Case(6, "held-out split smaller than one batch", setup=_small_folder,
         message="fewer than one batch of 8", issue=25),
    # 7. An --out name TensorFlow cannot take (a byte not valid in the locale's encoding).
    Case(7, "--out not valid text in the locale's encoding",
         setup=lambda tmp_path, monkeypatch: ["--out", str(tmp_path / "o\udce9")],
         message="is not valid text in this locale's encoding", issue=25),
    # 11. A full disk: one line naming the folder and its free space; nothing half-written.
    Case(11, "full disk at a checkpoint", setup=_disk_full_at_checkpoint,
         code=run_all.EXIT_RUN_FAILED, trains=True, message="no space left on the device",
         check=_one_line_nothing_lost(lambda t: run_dir(t) / "checkpoints"), issue=25),
    Case(11, "full disk at a run's config.json", setup=_disk_full_writing(RUN, ".json"),
         code=run_all.EXIT_RUN_FAILED, trains=True, message="while writing config.json",
         check=_one_line_nothing_lost(run_dir), issue=25),
    Case(11, "full disk at the tables", setup=_disk_full_writing("o", ".csv"),
         code=run_all.EXIT_RUN_FAILED, trains=True, message="while writing table_3_1.csv",
         check=_one_line_nothing_lost(lambda t: t / "o"), issue=25),
    # 13. Advice names the command's flags, not Python argument names.
    Case(13, "--data-dir that does not exist", setup=lambda tmp_path, monkeypatch: [
         "--data-dir", str(tmp_path / "nowhere")], message="(--data-dir) does not exist",
         check=_names_the_flag, issue=25),
    # 9. --set values are converted against the config field's type (tests/test_overrides.py
    # has the rest): a word, nan, a fraction for an integer, a field the row sets.
    Case(9, "--set a word where a number belongs", ["--set", "vae.learning_rate=fast"],
         message="VAEConfig.learning_rate is float; give a number, not 'fast'", issue=25),
    Case(9, "--set nan", ["--set", "vae.learning_rate=nan"], message="give a finite number",
         issue=25),
    Case(9, "--set a fraction for an integer", ["--set", "vae.widths=16,32.5"],
         message="give comma-separated values, each a whole number", issue=25),
    Case(9, "--set an unknown field", ["--set", "vae.lr=0.1"],
         message="unknown key for VAEConfig; known keys:", issue=25),
    Case(9, "--set a field the table row sets", ["--set", "vae.batch_size=16"],
         message="the batch comes from the table row", issue=25),
]


@pytest.mark.parametrize("case", [pytest.param(c, marks=c.marks, id=f"{c.item}: {c.name}"
                                               if c.issue == 10 else
                                               f"{c.issue}.{c.item}: {c.name}")
                                  for c in CASES])
def test_campaign(case, tmp_path, capsys, monkeypatch):
    import experiments.runner as runner

    extra = (case.setup(tmp_path, monkeypatch) if case.setup else None) or []
    capsys.readouterr()
    if not case.trains:  # nothing may train: execute_run is where every run starts
        def refuse(plan, **kwargs):
            raise AssertionError(f"{plan.name} started training")
        monkeypatch.setattr(runner, "execute_run", refuse)
    code, out, err = main(tmp_path, *case.args, *extra, capsys=capsys)
    assert code == case.code, err[-3000:]
    assert case.message in err, err[-3000:]
    if case.code == run_all.EXIT_BAD_INPUT:  # one clear line, no traceback
        assert "Traceback" not in err
        assert len([line for line in err.splitlines() if "error" in line]) == 1, err
    if case.check:
        case.check(tmp_path, out, err)


# ----------------------------------------------------------------- below run_all.py
@pytest.mark.slow
def test_0_smoke_reference_statistics_never_stand_in_for_the_whole_split(tmp_path, monkeypatch):
    """The sequence a new user runs: a smoke evaluation (64 train images), then a quick one
    on the same machine and cache; the quick one must score against the whole split."""
    from data import open_dataset
    from experiments.profiles import PROFILES
    from metrics.features import FeatureStats

    _cache(tmp_path, monkeypatch)
    fake = open_dataset("synthetic", "test").arrays()[0][:64]
    batches = lambda: [fake.astype(np.float32) / 127.5 - 1.0]  # noqa: E731

    def scorer(profile):
        train = open_dataset("synthetic", "train", limit=PROFILES[profile].train_limit)
        from experiments.scoring import make_scorer

        request = run_all.parse_args([*BASE, "--profile", profile, "--metrics", "evaluator"])
        return make_scorer(request, train)[0], train

    smoke, smoke_train = scorer("smoke")
    smoke(batches(), 64, 0)
    quick, quick_train = scorer("quick")
    assert smoke_train.num_examples == 64 < quick_train.num_examples
    after_smoke = quick(batches(), 64, 0)
    for path in (tmp_path / "cache" / "refstats").iterdir():
        path.unlink()
    fresh = quick(batches(), 64, 0)
    assert after_smoke == fresh
    counts = sorted(FeatureStats.load(p).meta["n_samples"]
                    for p in (tmp_path / "cache" / "refstats").glob("*.npz"))
    assert counts == [quick_train.num_examples]


def test_0_a_cache_file_recording_another_count_is_not_used(tmp_path, capsys):
    from data import open_dataset
    from metrics.features import FeatureRunner, reference_stats

    from test_metrics_pipeline import toy_network

    runner = FeatureRunner(toy_network())
    train = open_dataset("synthetic", "train", image_size=16)
    whole = reference_stats(runner, train, cache_dir=tmp_path, progress=False)
    (path,) = (tmp_path / "refstats").glob("*.npz")
    first = reference_stats(runner, open_dataset("synthetic", "train", image_size=16, limit=64),
                            cache_dir=tmp_path, progress=False)
    assert first.n_samples == 64 and whole.n_samples == 512
    # a file renamed into the whole split's place holds 64 images' statistics: refused
    (short,) = [p for p in (tmp_path / "refstats").glob("*.npz") if p != path]
    os.replace(short, path)
    os.replace(str(short) + ".sha256", str(path) + ".sha256")
    again = reference_stats(runner, train, cache_dir=tmp_path, progress=False)
    assert again.n_samples == 512 and "recorded count 64, requested 512" in capsys.readouterr().err


def test_3_history_csv_keeps_losses_exactly(tmp_path):
    from common import files as artifacts

    value = 1234.5678901234567
    artifacts.write_csv(tmp_path / "history.csv", [{"epoch": 1, "loss": value}], exact=True)
    assert float(artifacts.read_csv(tmp_path / "history.csv")[0]["loss"]) == value


def test_9_a_failed_download_leaves_no_partial_files(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    from data import DatasetError, catalog, open_dataset, tfds_source

    monkeypatch.setattr(tfds_source, "reachable", lambda *a, **k: True, raising=False)
    monkeypatch.setitem(catalog.SYSTEM_DIRS, "fashion_mnist", [])

    def half_download(self, *args, **kwargs):
        partial = tmp_path / "downloads" / "extracted" / "train-images.gz.tmp.1f2e"
        partial.parent.mkdir(parents=True)
        partial.write_bytes(b"\x1f\x8b half a file")
        raise OSError("connection reset")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", half_download)
    (tmp_path / "keep.txt").write_text("the user's own file")
    with pytest.raises(DatasetError, match="connection reset"):
        open_dataset("fashion_mnist", data_dir=str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_9_offline_probe_is_bounded():
    from data import tfds_source

    started = time.monotonic()
    # 192.0.2.0/24 is TEST-NET-1: never routed, so a connection can only time out
    assert tfds_source.reachable("192.0.2.1", 80, timeout=1.0) is False
    assert time.monotonic() - started < 3.0


def test_9_falling_back_to_the_system_copy_is_said(tmp_path, monkeypatch, capsys):
    from data import catalog, open_dataset, tfds_source

    system = tmp_path / "system"
    system.mkdir()
    from test_data import _write_idx_pair

    _write_idx_pair(system, "train", np.zeros((3, 28, 28), np.uint8), [1, 2, 3])
    monkeypatch.setitem(catalog.SYSTEM_DIRS, "fashion_mnist", [str(system)])

    def offline(*args, **kwargs):
        raise tfds_source.TfdsUnavailable("offline")

    monkeypatch.setattr(tfds_source, "prepare", offline)
    (tmp_path / "empty").mkdir()
    source = open_dataset("fashion_mnist", data_dir=str(tmp_path / "empty"))
    assert source.num_examples == 3
    err = capsys.readouterr().err
    assert "using the system copy" in err and str(system) in err


def test_16_sixteen_bit_pngs_are_scaled_not_clipped(tmp_path):
    from PIL import Image

    from data import open_dataset

    ramp = np.linspace(0, 65535, 32).round().astype(np.uint16)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(40):
        Image.fromarray(np.tile(ramp, (32, 1))).save(folder / f"{i:02d}.png")
    source = open_dataset(f"folder:{folder}", "train", image_size=32, channels=1)
    pixels = source.arrays()[0][0, 0, :, 0]
    expected = np.round(ramp / 257.0)
    assert np.abs(pixels.astype(int) - expected).max() <= 1
    assert (source.arrays()[0] == 255).mean() < 0.05


def test_16_integer_images_beyond_16_bits_are_refused(tmp_path):
    from PIL import Image

    from data import DatasetError
    from data.folder import _eight_bit

    wide = Image.fromarray(np.full((8, 8), 1 << 20, np.int32))  # mode 'I', 32-bit
    with pytest.raises(DatasetError, match="beyond 16 bits"):
        _eight_bit(wide, tmp_path / "wide.png")


def test_17_written_files_get_the_permissions_open_gives(tmp_path):
    from common import files as artifacts

    old = os.umask(0o022)
    try:
        artifacts.write_json(tmp_path / "a.json", {"x": 1})
        artifacts.write_npz(tmp_path / "a.npz", x=np.zeros(2))
        with open(tmp_path / "plain", "w"):
            pass
        os.umask(0o077)
        artifacts.write_text(tmp_path / "private.md", "x")
    finally:
        os.umask(old)
    mode = lambda name: stat.S_IMODE((tmp_path / name).stat().st_mode)  # noqa: E731
    assert mode("a.json") == mode("a.npz") == mode("plain") == 0o644
    assert mode("private.md") == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


# ----------------------------------------------------------------- issue 25: sampling, stderr
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished smoke run (BASE's), for the cases of ``python -m experiments.sample``;
    a test that changes it works on a copy (``_copy``)."""
    base = tmp_path_factory.mktemp("finished")
    assert main(base)[0] == 0
    return run_dir(base)


def _copy(run, tmp_path):
    return Path(shutil.copytree(run, tmp_path / "runs" / run.name))


def _sample(*args, capsys):
    from experiments.sample import main as sample_main

    try:
        code = sample_main([str(a) for a in args])
    except SystemExit as exit_:  # argparse's errors
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def _no_load(monkeypatch):
    """Fail the test if the sampling command loads the run (its options come first)."""
    import experiments.runs as runs

    def refuse(*args, **kwargs):
        raise AssertionError("the run was loaded before the options were checked")
    monkeypatch.setattr(runs, "load_run", refuse)


def _one_error_line(err):
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err


@pytest.mark.parametrize("target", ["samples.npz", "samples.png", "a link to samples.npz",
                                    "checkpoints/grid.png"])
def test_25_1_sampling_never_overwrites_a_finished_runs_files(target, finished_run, tmp_path,
                                                              capsys, monkeypatch):
    run = _copy(finished_run, tmp_path)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    out = run / target
    if target.startswith("a link"):
        out = tmp_path / "mine.npz"
        out.symlink_to(run / "samples.npz")
    _no_load(monkeypatch)
    code, _, err = _sample(run, "--n", "4", "--out", out, capsys=capsys)
    assert code == 2 and "is a file of the run in" in err, err
    _one_error_line(err)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def _proc_out(tmp_path):
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc (Linux)")
    return "/proc/samples.png"  # a folder nobody, root included, can create files in


@pytest.mark.parametrize("args, message", [
    (["--n", str(10 ** 12)], "--n 1000000000000: give 1 to 100000"),
    (["--n", "0"], "--n 0: give 1 to"),
    (["--columns", "0"], "--columns 0: give 1 or more"),
    (["--seed", str(2 ** 63)], f"--seed {2 ** 63}: give 0 to 2147483647"),
    (["--seed", "-1"], "--seed -1: give 0 to"),
    (["--out", _proc_out], "--out '/proc/samples.png': cannot write in /proc"),
    (["--out", lambda t: (t / "grid.png").mkdir() or t / "grid.png"], "is a folder; name a"),
    (["--out", lambda t: t / "o\udce9.png"], "is not valid text in this locale's encoding"),
], ids=["huge --n", "--n 0", "--columns 0", "--seed 2**63", "--seed -1", "unwritable --out",
        "--out a folder", "--out not valid text"])
def test_25_8_sample_checks_every_option_before_loading_the_run(args, message, tmp_path,
                                                                capsys, monkeypatch):
    _no_load(monkeypatch)
    args = [a(tmp_path) if callable(a) else a for a in args]
    code, _, err = _sample(tmp_path / "no-such-run", *args, capsys=capsys)
    assert code == 2 and message in err, err
    _one_error_line(err)


def test_25_2_a_run_whose_checkpoint_index_is_damaged_samples_as_before(finished_run, tmp_path,
                                                                       capsys):
    run = _copy(finished_run, tmp_path)
    (run / "checkpoints" / "checkpoint").write_bytes(b"garbage\x00{{")
    code, _, err = _sample(run, "--n", "4", "--out", tmp_path / "damaged.npz", capsys=capsys)
    assert code == 0, err
    assert "checkpoint is damaged" in err and "restoring ckpt-" in err, err
    assert _sample(finished_run, "--n", "4", "--out", tmp_path / "intact.npz",
                   capsys=capsys)[0] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "damaged.npz")["images"],
                                  np.load(tmp_path / "intact.npz")["images"])


def test_25_5_a_complete_rows_missing_stage_is_not_listed_to_run(tmp_path, capsys):
    """The plan lists a first stage "to run" only when a row that will train needs it: a
    complete row's checkpoint holds the stage's weights (sampling uses them)."""
    import tensorflow as tf

    from experiments import grid
    from experiments.profiles import get_profile
    from tests.drivers.stages import sources
    from tests.drivers.train_autoregressive import tiny_plan

    plan = tiny_plan(str(tmp_path))
    train, val = sources()
    for done, state in (({"run": plan.name}, "not needed"), (None, "(to run)")):
        runs = grid.RunSet(plans=[plan], done={plan.name: done}, resample={},
                           train_source=train, val_source=val, score=None, network="none")
        grid.print_plan(runs, profile=get_profile("smoke"), dataset="synthetic",
                        out_dir=str(tmp_path), strategy=tf.distribute.get_strategy())
        (line,) = [line for line in capsys.readouterr().out.splitlines()
                   if plan.stages[0].name in line]
        assert state in line, line


@pytest.mark.slow
def test_25_5_a_two_stage_row_samples_without_its_first_stage_folder(tmp_path, capsys):
    """The tokenizer's folder deleted, or its checkpoint damaged, after the row finished:
    the row samples exactly as before, from its own checkpoint (which holds the frozen
    tokenizer's weights), with a line saying so."""
    from experiments.sample import sample_run
    from tests.drivers.train_autoregressive import run, tiny_plan

    plan = tiny_plan(str(tmp_path / "o"))
    run(plan)
    before = sample_run(plan.run_dir, n=6, seed=5)
    stage = Path(plan.stages[0].run_dir)
    for ckpt in (stage / "checkpoints").glob("ckpt-*.data-*"):
        ckpt.write_bytes(b"")
    capsys.readouterr()
    np.testing.assert_array_equal(sample_run(plan.run_dir, n=6, seed=5), before)
    assert "its weights come from the run's own checkpoint" in capsys.readouterr().err
    shutil.rmtree(stage)
    np.testing.assert_array_equal(sample_run(plan.run_dir, n=6, seed=5), before)
    assert "no such run folder" in capsys.readouterr().err


def _cli(args, env_extra=None):
    """A fresh process with TensorFlow's native logging at its default (the commands set
    it): stderr as a user sees it, C++ lines included."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          timeout=600)


def test_25_14_run_all_bad_input_is_one_line_on_the_real_stderr(tmp_path):
    """TensorFlow started (the strategy chosen, devices listed: "failed call to cuInit" on
    a machine without a GPU), then --out refused: a non-ASCII byte under LC_ALL=C."""
    out = os.fsencode(tmp_path) + b"/o\xe9"
    done = _cli([b"run_all.py", *[a.encode() for a in BASE], b"--out", out],
                env_extra={"LC_ALL": "C"})
    err = done.stderr.decode("utf-8", "backslashreplace")
    assert done.returncode == run_all.EXIT_BAD_INPUT, err[-3000:]
    assert len(err.splitlines()) == 1, err
    assert err.startswith("run_all.py: error: --out ") and "is not valid text" in err
    assert not os.path.exists(out)


def test_25_14_sample_bad_input_is_one_line_on_the_real_stderr(finished_run, tmp_path):
    """The model built and its checkpoint read (TensorFlow ran), then refused: its data
    shard truncated."""
    run = _copy(finished_run, tmp_path)
    (data,) = (run / "checkpoints").glob("ckpt-4.data-*")
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    done = _cli(["-m", "experiments.sample", str(run), "--n", "2", "--out",
                 str(tmp_path / "x.png")])
    err = done.stderr.decode()
    assert done.returncode == 2, err[-3000:]
    assert len(err.splitlines()) == 1, err
    assert err.startswith("experiments.sample: error: ") and "is damaged" in err


def test_25_11_a_full_disk_in_a_writer_names_the_folder_and_leaves_nothing(tmp_path,
                                                                          monkeypatch):
    from common import files

    _disk_full_writing("w", ".npz")(tmp_path, monkeypatch)
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "old.npz").write_bytes(b"the previous version")
    with pytest.raises(files.DiskFull) as caught:
        files.write_npz(tmp_path / "w" / "old.npz", images=np.zeros((64, 8, 8, 1), np.uint8))
    assert f"holding {tmp_path / 'w'} (" in str(caught.value) and "free)" in str(caught.value)
    assert sorted(os.listdir(tmp_path / "w")) == ["old.npz"]
    assert (tmp_path / "w" / "old.npz").read_bytes() == b"the previous version"


def test_docs_list_what_happens_when():
    text = (Path(__file__).resolve().parents[1] / "docs" / "bad-inputs.md").read_text()
    section = text.split("# What happens when", 1)[1]
    for phrase in ("exit 2", "another `--out`", "metrics.json", "checkpoint", "Ctrl-C",
                   "TF_CONFIG", "16-bit", "umask", "GENBENCH_CACHE", "--seeds", "--image-size",
                   "history.csv", "--inception-weights", "Reference statistics", "--set",
                   "`checkpoints/checkpoint` index", "full disk", "held-out split smaller",
                   "locale's", "(0, 1]", "`--data-dir`", "TF_CPP_MIN_LOG_LEVEL",
                   "experiments.sample", "run's own file", "first-stage folder was deleted"):
        assert phrase in section, phrase
