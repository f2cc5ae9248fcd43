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

from experiments.options import default_out as _default_out

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RunFailed(RuntimeError):
    """run_all.py exited non-zero: the lines printed above the error say why."""


def suggest_profile() -> str:
    """Say which accelerator this runtime has and which profile fits it; return that profile
    ("paper" on a TPU or a GPU of compute capability >= 8.0 (A100, L4, H100), "colab" on
    older GPUs (Colab's T4: every row within the thesis's 2.5 hours), else "quick")."""
    from training.strategy import _tpu_hinted

    if _tpu_hinted():
        print("TPU runtime: profile 'paper' (the thesis's settings; run_all.py trains under "
              "TPUStrategy).")
        return "paper"
    from training.runtime import BFLOAT16_GPU, local_devices

    gpus = [d for d in local_devices() if d.kind == "GPU"]
    if gpus and min(d.compute_capability or (0, 0) for d in gpus) < BFLOAT16_GPU:
        print(f"{len(gpus)} GPU(s) ({gpus[0].name}): profile 'colab' (the thesis's networks, "
              f"each row within the thesis's 2.5 hours on a T4; the GAN trains 25 of 100 "
              f"epochs); 'paper' is the full length, 'quick' takes minutes per run.")
        return "colab"
    if gpus:
        print(f"{len(gpus)} GPU(s) ({gpus[0].name}): profile 'paper' (the thesis's settings; "
              f"hours per run on one GPU); 'quick' takes minutes per run.")
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
    return os.path.join(ROOT, _default_out(profile, dataset))


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


def runtime_accelerator():
    """(key of ``experiments.forecast.ACCELERATORS``, what this runtime has): the first
    GPU matched by name (T4, A100, H100), else (None, "this machine's CPU" or the GPU)."""
    from experiments.forecast import ACCELERATORS
    from training.runtime import local_devices

    device = local_devices()[0]
    if device.kind == "GPU":
        for acc in ACCELERATORS:
            if acc.short.split("-")[0] in device.name.upper():
                if acc.key.startswith("a100") and "80G" in device.name.upper():
                    return "a100_80", device.name
                return acc.key, device.name
        return None, f"GPU {device.name} (no data-sheet peak known: this machine's rate)"
    if device.kind == "TPU":
        return None, "TPU (no data-sheet peak known here: see the accelerators' columns)"
    return None, "this machine's CPU"


def show_plan(tables, *, profile, dataset, out="", data_dir="", seeds=1, only="",
              metrics="auto") -> dict | None:
    """``run_all.py --plan`` for the run cell's parameters (nothing is trained): writes
    OUT/plan.md and plan.json, then shows every run's hours on the accelerator this
    runtime has (a T4, A100 or H100 by its data-sheet peak; else this machine's measured
    rate), its peak memory at the batch and whether it fits. Returns plan.json's content
    (None when nothing was planned: thesis 003's face runs are not)."""
    import json

    out = os.path.abspath(out) if out else default_out(profile, dataset)
    args = run_all_args(tables, profile=profile, dataset=dataset, out=out, data_dir=data_dir,
                        seeds=seeds, only=only, metrics=metrics) + ["--plan", "--quiet"]
    print("$ python run_all.py " + " ".join(shlex.quote(a) for a in args), flush=True)
    path = os.path.join(out, "plan.json")
    before = os.stat(path).st_mtime_ns if os.path.exists(path) else None
    child = subprocess.run([sys.executable, "-u", "run_all.py", *args], cwd=ROOT,
                           capture_output=True, text=True)
    if child.returncode != 0:
        sys.stdout.write(child.stdout + child.stderr)
        raise RunFailed(f"run_all.py --plan exited with status {child.returncode}: the lines "
                        f"above say why")
    if not os.path.exists(path) or os.stat(path).st_mtime_ns == before:
        sys.stdout.write(child.stdout)  # nothing planned (thesis 003's face runs)
        return None
    with open(path, encoding="utf-8") as f:
        plan = json.load(f)
    key, what = runtime_accelerator()
    name = next((a["name"] for a in plan["header"]["accelerators"] if a["key"] == key), what)
    print(f"The plan on this runtime ({name}): hours at "
          f"{plan['header']['utilisation']:.0%} of its data-sheet peak" if key else
          f"The plan on this runtime ({what}): hours at the rate measured here")
    print(f"{'run / stage':46s} {'hours':>9s} {'peak GB':>8s}  fits")
    total = 0.0
    ram = plan["header"]["this_machine"].get("memory_bytes")
    for row in plan["rows"]:
        peak = row["memory"]["peak_bytes_float32"]
        figures = row["accelerators"][key] if key else {  # this machine: its memory
            "hours": row["this_machine"]["hours"], "peak_gb": peak and peak / 1e9,
            "fits": None if not (peak and ram) else peak <= 0.9 * ram,
            "fix": "a GPU runtime, or --accumulate"}
        total += figures["hours"]
        fits = ("?" if figures["fits"] is None else "yes" if figures["fits"]
                else f"no: {figures['fix']}")
        peak = "n/a" if figures["peak_gb"] is None else f"{figures['peak_gb']:.1f}"
        label = row["name"] + ("" if row["kind"] == "run" else " (shared)")
        print(f"{label:46s} {figures['hours']:9.3g} {peak:>8s}  {fits}")
    print(f"{'total':46s} {total:9.3g}")
    print(f"Every figure, and the hours on the other accelerators: {os.path.join(out, 'plan.md')}")
    return plan
