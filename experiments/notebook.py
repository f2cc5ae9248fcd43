"""What the notebooks call besides ``experiments.compare``: which profile this runtime fits,
and ``run_all.py`` with its progress shown live (notebooks hold parameters and calls only).
"""
from __future__ import annotations

import codecs
import os
import shlex
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RunFailed(RuntimeError):
    """run_all.py exited non-zero: the lines printed above the error say why."""


def suggest_profile() -> str:
    """Say which accelerator this runtime has and which profile fits it; return that profile
    ("paper" on a GPU or TPU, else "quick")."""
    from training.strategy import _tpu_hinted

    if _tpu_hinted():
        print("TPU runtime: profile 'paper' (the thesis's settings; run_all.py trains under "
              "TPUStrategy).")
        return "paper"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        print(f"{len(gpus)} GPU(s): profile 'paper' (the thesis's settings; hours per run "
              f"on one GPU); 'quick' takes minutes per run.")
        return "paper"
    print("No GPU or TPU: profile 'quick' (a few CPU minutes per run, smaller models); "
          "'smoke' checks the set-up in about a minute. For 'paper', choose a GPU or TPU "
          "runtime (Colab: Runtime > Change runtime type) and run this cell again.")
    return "quick"


def run_all_args(tables, *, profile, dataset, out, data_dir="", seeds=1, only="",
                 metrics="auto") -> list:
    """run_all.py's arguments for the notebooks' parameters (empty strings: the default;
    no ``tables``: no ``--tables``, for experiments that ``only`` alone selects)."""
    args = ["--tables", *tables] if tables else []
    args += ["--profile", profile, "--dataset", dataset, "--out", out, "--seeds", str(seeds),
             "--metrics", metrics]
    if data_dir:
        args += ["--data-dir", data_dir]
    if only:
        args += ["--only", *(shlex.split(only) if isinstance(only, str) else only)]
    return args


def default_out(profile: str, dataset: str) -> str:
    """run_all.py's default output folder, reports/<profile>/<dataset>, under the suite."""
    import run_all

    return os.path.join(ROOT, "reports", profile, run_all._slug(dataset))


def run_experiment(tables, *, profile, dataset, out="", data_dir="", seeds=1, only="",
                   metrics="auto") -> str:
    """Run ``run_all.py`` for ``tables`` and/or the ``only`` selection in a child process,
    printing its output as it comes (progress lines of every run); return the output
    folder. RunFailed when it exits non-zero (bad input exits before anything trains, with
    one line saying why). Ctrl-C / the notebook's stop button interrupts the child, which
    saves its place: run again to resume.
    """
    out = os.path.abspath(out) if out else default_out(profile, dataset)
    args = run_all_args(tables, profile=profile, dataset=dataset, out=out, data_dir=data_dir,
                        seeds=seeds, only=only, metrics=metrics)
    print("$ python run_all.py " + " ".join(shlex.quote(a) for a in args), flush=True)
    child = subprocess.Popen([sys.executable, "-u", "run_all.py", *args], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _relay(child.stdout)
        status = child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)  # run_all.py stops at a checkpoint and says where
        _relay(child.stdout)
        child.wait()
        raise
    if status != 0:
        raise RunFailed(f"run_all.py exited with status {status}: the lines above say why")
    return out


def _relay(stream):
    """Copy the child's output to this process's stdout as it arrives (not line-buffered:
    progress bars redraw with carriage returns)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    fd = stream.fileno()
    while True:
        chunk = os.read(fd, 4096)
        sys.stdout.write(decoder.decode(chunk, final=not chunk))
        sys.stdout.flush()
        if not chunk:
            return
