"""Quality per CPU budget: fd_eval against training seconds for each family's baseline row.

Trains the Table 3.1 baseline row at latent 128 of each selected family (vae/elbo,
gan/wasserstein_gp, diffusion/mse, autoregressive/cross_entropy) exactly as
``run_all.py --profile quick`` would (same plan, same preset, same seed), in its own
folder, and at the end of every epoch samples ``--n-samples`` images and scores them
with the suite's evaluator against the whole train split. The clock counts training
only: the time spent probing is subtracted, and a two-stage family starts at the
seconds its first stage took. Prints and writes a table (``quality_budget.{csv,md}``)
and a plot (``quality_budget.png``) in ``--out``; reruns reuse finished probes.

    python benchmarks/quality_budget.py --dataset fashion_mnist \
        --data-dir /usr/share/datasets/fashion-mnist [--families vae gan] [--seed 0]

``--latent N`` trains the baseline row at latent N instead (e.g. ``--families vae --latent
2048``: vae/elbo@2048) and ``--epochs N`` trains N epochs instead of the profile's, in a
folder marked ``-epochs<N>`` (its identity records the length, so it never stands in for a
run of the profile): together they show whether a row is short of steps (its curve still
falling at the profile's length) or of something else (flat).

``--from-runs DIR`` trains nothing: it tabulates the final point (fd_eval, training
seconds of every stage) of each baseline run already complete in ``DIR/runs`` (e.g. the
committed ``reports/quick/fashion_mnist``), one point per family instead of a curve.

Numbers are wall seconds on this machine; other processes on the same cores inflate
them (the table records the CPU count and, per point, the load average when its run began).
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from common import figures  # noqa: E402
from common import files as artifacts  # noqa: E402
from common.run_record import RunMetrics, StageMetrics  # noqa: E402
from data import native_channels, open_dataset  # noqa: E402
from experiments.options import Request  # noqa: E402
from experiments.planning import held_out_split, select_rows  # noqa: E402
from experiments.profiles import get_profile  # noqa: E402
from experiments.runner import execute_run, generate_uint8, plan_run  # noqa: E402
from experiments.scoring import make_scorer  # noqa: E402
from metrics import uint8_batches  # noqa: E402
from training.strategy import choose_strategy  # noqa: E402

BASELINES = {"vae": "vae/elbo@128", "gan": "gan/wasserstein_gp@128",
             "diffusion": "diffusion/mse@128",
             "autoregressive": "autoregressive/cross_entropy@128"}
#: The quick profile's quality targets (issues 7, 8, 11): fd_eval at or below.
TARGETS = {"vae": 7.0, "gan": 5.0, "diffusion": 5.0, "autoregressive": 5.0}
COLUMNS = ["family", "row", "run", "epoch", "step", "train_seconds", "fd_eval", "kid", "target",
           "metric_network", "n_samples", "seed", "load_average"]


class QualityProbe(keras.callbacks.Callback):
    """At each epoch's end: sample, score, and record (training seconds, fd_eval).

    ``offset``: seconds already spent on earlier stages; the probe's own time is
    excluded from the clock.
    """

    def __init__(self, score, n_samples, seed, offset, on_point):
        super().__init__()
        self.score, self.n_samples, self.seed = score, n_samples, seed
        self.offset, self.on_point = offset, on_point
        self.probing = 0.0

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        probe_start = time.perf_counter()
        trained = probe_start - self.started - self.probing
        fake = generate_uint8(self.model, self.n_samples, seed=self.seed + 777)
        result = self.score(uint8_batches(fake), self.n_samples, self.seed)
        self.probing += time.perf_counter() - probe_start
        self.on_point(epoch + 1, int(self.model.step_counter.numpy()),
                      round(self.offset + trained, 1), result)


def _stage_seconds(plan) -> float:
    return sum(float(StageMetrics.read(stage.run_dir).train_seconds or 0.0)
               for stage in plan.stages)


def _plot(points, path, title):
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in dict.fromkeys(p.get("run") or p["row"] for p in points):
        mine = [p for p in points if (p.get("run") or p["row"]) == run]
        line, = ax.plot([p["train_seconds"] for p in mine], [p["fd_eval"] for p in mine],
                        marker="o", label=f"{mine[0]['family']} ({run})")
        ax.axhline(TARGETS[mine[0]["family"]], color=line.get_color(), ls=":", lw=1)
    ax.axvline(600, color="grey", ls="--", lw=1, label="10-minute budget")
    ax.set_xlabel("training seconds (wall, this machine)")
    ax.set_ylabel("fd_eval (lower is better)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    figures.save_figure(plt, fig, path, title)


def _markdown(points, context) -> str:
    lines = ["# Quality per training budget", "", context, "",
             "| family (run) | epoch | step | training s | fd_eval | KID | target |",
             "|---|---|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p['family']} ({p.get('run') or p['row']}) | {p['epoch']} | {p['step']} | "
                     f"{p['train_seconds']:.0f} | {p['fd_eval']:.3f} | {p['kid']:.4f} | "
                     f"<= {p['target']:g} |")
    return "\n".join(lines) + "\n"


def final_point(run_dir, family, seed) -> dict | None:
    """(training seconds of all stages, fd_eval) of a complete run folder, or None."""
    if not os.path.exists(RunMetrics.path(run_dir)):
        return None
    metrics = RunMetrics.read(run_dir)
    stages = sum(float(s.get("train_seconds") or 0.0) for s in (metrics.stages or {}).values())
    return {"family": family, "row": BASELINES[family], "run": os.path.basename(run_dir),
            "epoch": int(metrics.epochs),
            "step": int(metrics.steps),
            "train_seconds": round(stages + float(metrics.train_seconds), 1),
            "fd_eval": float(metrics.fid), "kid": float(metrics.kid),
            "target": TARGETS[family], "metric_network": metrics.metric_network,
            "n_samples": int(metrics.n_samples), "seed": seed}


def tabulate_runs(args) -> int:
    """The --from-runs mode: one final point per family from complete runs."""
    points = []
    for family in args.families:
        loss = BASELINES[family].split("/")[1].split("@")[0]
        pattern = os.path.join(args.from_runs, "runs", f"{family}-{loss}-b*-z128-s{args.seed}")
        for run_dir in sorted(glob.glob(pattern)):
            point = final_point(run_dir, family, args.seed)
            if point is not None:
                points.append(point)
    if not points:
        print(f"quality_budget.py: error: no complete baseline run in {args.from_runs}/runs",
              file=sys.stderr)
        return 2
    out = args.out or os.path.join(args.from_runs, "quality_budget")
    context = (f"Final points of the complete baseline runs in `{args.from_runs}` (seed "
               f"{args.seed}): fd_eval of their samples against the whole train split, metric "
               f"network `{points[0]['metric_network']}`; training seconds are wall seconds of "
               f"every stage as the runs recorded them (first stages included in full). "
               f"Written by `benchmarks/quality_budget.py --from-runs`.")
    _write(out, points, context, f"fd_eval vs training time: final points, seed {args.seed}")
    return 0


def _write(out, points, context, title):
    os.makedirs(out, exist_ok=True)
    points.sort(key=lambda p: (list(BASELINES).index(p["family"]), p["row"], p["epoch"]))
    artifacts.write_csv(os.path.join(out, "quality_budget.csv"), points, COLUMNS)
    artifacts.write_text(os.path.join(out, "quality_budget.md"), _markdown(points, context))
    _plot(points, os.path.join(out, "quality_budget.png"), title)
    print(_markdown(points, context))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=list(BASELINES), choices=list(BASELINES))
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-samples", type=int, default=2000)
    parser.add_argument("--latent", type=int, default=128,
                        help="the baseline row's latent size (default 128)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of the final stage (default: the profile's)")
    parser.add_argument("--out", default=None,
                        help="default: reports/<profile>/<dataset>/quality_budget")
    parser.add_argument("--from-runs", default=None, metavar="DIR",
                        help="tabulate the final points of the complete runs in DIR/runs; "
                             "train nothing")
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs {args.epochs}: give a positive number of epochs")
    if args.from_runs:
        return tabulate_runs(args)

    rows = {}  # each family's row, checked before any data is read
    for family in args.families:
        selector = BASELINES[family].split("@")[0] + f"@{args.latent}"
        try:
            (rows[family],) = select_rows([selector], ("table_3_1",))[0][1]
        except (ValueError, IndexError):  # SelectorError is a ValueError
            parser.error(f"--latent {args.latent}: Table 3.1 has no row {selector} "
                         f"(its latent sizes: 128 and 2048, the GAN's 128 and 1024)")
    profile = get_profile(args.profile)
    channels = native_channels(args.dataset)
    out = args.out or os.path.join("reports", profile.name, args.dataset, "quality_budget")
    os.makedirs(out, exist_ok=True)
    train = open_dataset(args.dataset, "train", channels=channels, data_dir=args.data_dir,
                         limit=profile.train_limit)
    val = open_dataset(args.dataset, held_out_split(args.dataset), channels=channels,
                       data_dir=args.data_dir, limit=profile.val_limit)
    score, network = make_scorer(Request(metrics="evaluator", data_dir=args.data_dir,
                                         quiet=True), train)
    strategy = choose_strategy("auto")
    csv_path = os.path.join(out, "quality_budget.csv")
    points = [dict(r) for r in artifacts.read_csv(csv_path)] if os.path.exists(csv_path) else []
    for p in points:
        for key in ("epoch", "step", "n_samples", "seed"):
            p[key] = int(p[key])
        for key in ("train_seconds", "fd_eval", "kid", "target"):
            p[key] = float(p[key])
        # the load when the point's run began (older tables lack the column)
        p["load_average"] = float(p["load_average"]) if p.get("load_average") else None
    load = os.getloadavg()[0]
    for family in args.families:
        row = rows[family]
        plan = plan_run(row, args.seed, profile, dataset=args.dataset, image_size=32,
                        out_dir=out, num_classes=len(train.class_names), channels=channels)
        if args.epochs is not None:  # its own folder: the identity records the length
            plan = dataclasses.replace(
                plan, run_dir=f"{plan.run_dir}-epochs{args.epochs}",
                train_config=dataclasses.replace(plan.train_config, epochs=args.epochs))
        if any(p["row"] == row.key and p["seed"] == args.seed
               and (p.get("run") or plan.name) == plan.name for p in points):
            print(f"[quality] {family}: probes already in {csv_path}; skipped")
            continue
        mine = []

        def on_point(epoch, step, seconds, result, family=family, row=row, plan=plan):
            point = {"family": family, "row": row.key, "run": plan.name, "epoch": epoch,
                     "step": step,
                     "train_seconds": seconds, "fd_eval": float(result["fid"]),
                     "kid": float(result["kid"]), "target": TARGETS[family],
                     "metric_network": result["metric_network"], "n_samples": args.n_samples,
                     "seed": args.seed, "load_average": round(load, 1)}
            mine.append(point)
            print(f"[quality] {family} epoch {epoch} step {step}: {seconds:.0f} s "
                  f"fd_eval {point['fd_eval']:.3f}", flush=True)

        class StageClock(keras.callbacks.Callback):  # the probe learns the stages' time
            def on_train_begin(self, logs=None):
                probe.offset = _stage_seconds(plan)

        probe = QualityProbe(score, args.n_samples, args.seed, 0.0, on_point)
        print(f"[quality] {family}: {row.key}, {plan.train_config.epochs} epochs x "
              f"{plan.train_config.steps_per_epoch} steps -> {plan.run_dir}", flush=True)
        execute_run(plan, train_source=train, val_source=val, strategy=strategy, score=score,
                    verbose=False, extra_callbacks=[StageClock(), probe])
        points += mine
        artifacts.write_csv(csv_path, points, COLUMNS)
    # the scored points name the network exactly (kind, dataset, accuracy, SHA-256 prefix),
    # and each carries the load of the run it came from (a rerun that trains nothing must
    # not stamp today's load on yesterday's seconds)
    named = points[0]["metric_network"] if points else network
    loads = sorted({p["load_average"] for p in points if p.get("load_average") is not None})
    load_text = ("load average not recorded" if not loads else
                 f"load average {loads[0]:.1f} at the start" if len(loads) == 1 else
                 f"load averages {loads[0]:.1f}-{loads[-1]:.1f} at the runs' starts")
    context = (f"Profile `{profile.name}`, dataset `{args.dataset}` ({channels} channel(s)), "
               f"seed {args.seed}: fd_eval of {args.n_samples} samples against the whole train "
               f"split, metric network `{named}`; wall seconds of training on "
               f"{os.cpu_count()} CPU cores ({load_text}), probing "
               f"time excluded. Written by benchmarks/quality_budget.py.")
    _write(out, points, context,
           f"fd_eval vs training time, {profile.name} profile, {args.dataset}, seed {args.seed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
