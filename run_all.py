#!/usr/bin/env python
"""Regenerate the thesis tables: train every selected run, score it, write the reports.

    python run_all.py [--profile smoke|quick|paper] [--only SEL ...] [--dataset NAME]
                      [--data-dir PATH] [--out DIR] [--seeds N] [--strategy ...]

SEL is family[/loss][@latent] (vae, vae/wae, vae/elbo@2048), or one of thesis 003's
experiments: faces, faces/faithful, faces/fixed, faces/optimizers, bilinear. Runs land in
OUT/runs/<family>-<loss>-b<batch>-z<latent>-s<seed>/ and the tables in OUT/.
Complete runs are skipped, interrupted ones resume from their last checkpoint,
a failing run does not stop the others, and the exit status names the failures.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

# TensorFlow's C++ start-up chatter (no CUDA here, oneDNN notes) hides our progress lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1
EXIT_INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C (128 + SIGINT)
# Bounds that keep a typo from exhausting memory before anything useful happens: the run
# list grows with --seeds, and the families' networks are built for 8- to 256-pixel images
# (the theses use 32 and 64).
MAX_SEEDS = 100
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 256


def parse_args(argv=None):
    from experiments.profiles import PROFILES
    from training.strategy import STRATEGIES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="paper", choices=sorted(PROFILES),
                        help="smoke: seconds (tests); quick: CPU minutes; paper: thesis settings")
    parser.add_argument("--only", nargs="+", default=None, metavar="SEL",
                        help="family[/loss][@latent] selectors (default: every implemented family)")
    parser.add_argument("--tables", nargs="+", default=["table_3_1", "table_3_2"],
                        choices=["table_3_1", "table_3_2"], help="which experiments to run")
    parser.add_argument("--dataset", default=None,
                        help="cifar100 (thesis 004's default), cifar10, celeb_a (thesis 003's "
                             "default), fashion_mnist, mnist, folder:PATH or synthetic")
    parser.add_argument("--data-dir", default=None,
                        help="tfds data_dir, or a folder holding the official archives/idx files")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=None, choices=[1, 3],
                        help="1 (gray) or 3 (RGB); default: the dataset's own (1 for "
                             "fashion_mnist and mnist, else 3)")
    parser.add_argument("--out", default=None, help="default: reports/<profile>/<dataset>")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per row")
    parser.add_argument("--strategy", default="auto", choices=STRATEGIES)
    parser.add_argument("--metrics", default="auto",
                        choices=["auto", "inception", "evaluator", "none"],
                        help="auto: Inception if its weights are at hand, else the evaluator")
    parser.add_argument("--inception-weights", default=None,
                        help="path to inception-2015-12-05.tgz or the FID .pth (offline machines)")
    parser.add_argument("--optimizer", default=None,
                        help="thesis 003 face runs: train with this optimiser instead of the "
                             "mode's (rmsprop, adam, extra_adam, past_extra_adam, extra_sgd, ...)")
    parser.add_argument("--bilinear-eta", type=float, nargs="+", default=None, metavar="ETA",
                        help="step sizes of the bilinear game (default 0.05 0.2 0.5 0.9)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if not 1 <= args.seeds <= MAX_SEEDS:
        parser.error(f"--seeds {args.seeds}: give 1 to {MAX_SEEDS} (seeds 0..N-1 per row)")
    if not MIN_IMAGE_SIZE <= args.image_size <= MAX_IMAGE_SIZE:
        parser.error(f"--image-size {args.image_size}: the families are built for "
                     f"{MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} pixels")
    return args


def select_rows(only, table_names=("table_3_1", "table_3_2")):
    """The table rows to run, and the tables they belong to; bad selectors raise."""
    from experiments import table_3_1, table_3_2
    from experiments.tables import Selector, SelectorError
    from models import UnknownFamilyError, family_names, get_family

    tables = [t for t in (table_3_1.TABLE, table_3_2.TABLE) if t.name in table_names]
    if only:
        selectors = [Selector.parse(text) for text in only]
    else:
        implemented = []
        for name in family_names():
            if name == "faces":  # thesis 003's family: selected as faces/<mode>
                continue
            try:
                get_family(name)
                implemented.append(name)
            except UnknownFamilyError:
                print(f"[run_all] family {name!r} is not implemented yet: its rows are skipped")
        selectors = [Selector(name) for name in implemented]
    for selector in selectors:
        family = get_family(selector.family)  # unknown family -> UnknownFamilyError
        if selector.loss is not None and selector.loss not in family.losses:
            raise SelectorError(f"unknown loss {selector.loss!r} for family {selector.family!r}; "
                                f"known: {', '.join(sorted(family.losses))}")
        if not any(t.select([selector]) for t in tables):
            raise SelectorError(f"selector {selector.family}/{selector.loss or '*'}"
                                f"@{selector.latent or '*'} matches no row of "
                                f"{', '.join(t.name for t in tables)}")
    return [(table, table.select(selectors)) for table in tables]


def held_out_split(dataset: str) -> str:
    return "validation" if dataset == "celeb_a" else "test"


def main(argv=None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # outside a run (data, metrics set-up, tables): nothing to resume
        print("\n[run_all] interrupted (Ctrl-C); rerun the same command to continue: complete "
              "runs are skipped and interrupted ones resume", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv=None) -> int:
    args = parse_args(argv)
    from data import DatasetError, native_channels, open_dataset
    from common.config import ConfigError
    from experiments.profiles import get_profile
    from experiments.runner import (check_builds, check_reusable, check_shared_stages,
                                    execute_run, is_complete, plan_run, read_metrics,
                                    resample_run, sampler_changes)
    from training.strategy import choose_strategy, is_chief, strategy_name
    from training.trainer import read_history
    from experiments.tables import SelectorError
    from models import UnknownFamilyError

    from experiments import thesis_003

    profile = get_profile(args.profile)
    only_004, only_003 = thesis_003.split_selectors(args.only)
    dataset_003 = args.dataset or thesis_003.DEFAULT_DATASET
    args.dataset = args.dataset or "cifar100"
    out_003 = args.out or os.path.join("reports", profile.name, _slug(dataset_003))
    try:
        native = native_channels(args.dataset)
        args.channels = args.channels or native
        out_dir = args.out or os.path.join("reports", profile.name,
                                           _slug(args.dataset, args.channels, native))
        strategy = choose_strategy(args.strategy)
        faces_prepared = prepare_thesis_003(args, profile, only_003, dataset_003, out_003)
    except (DatasetError, SelectorError, UnknownFamilyError, ConfigError, ValueError,
            RuntimeError) as err:
        print(f"run_all.py: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if only_004 == []:  # only thesis 003 was selected
        return run_thesis_003(args, profile, faces_prepared, dataset_003, out_003, strategy)
    try:
        selected = select_rows(only_004, args.tables)
        check_writable(out_dir, "--out", "pass --out with a folder you can write to")
        train_source = open_dataset(args.dataset, "train", image_size=args.image_size,
                                    channels=args.channels, data_dir=args.data_dir,
                                    limit=profile.train_limit)
        val_source = open_dataset(args.dataset, held_out_split(args.dataset),
                                  image_size=args.image_size, channels=args.channels,
                                  data_dir=args.data_dir, limit=profile.val_limit)
        plans = [(table, plan_run(row, seed, profile, dataset=args.dataset,
                                  image_size=args.image_size, out_dir=out_dir,
                                  num_classes=len(train_source.class_names),
                                  channels=args.channels))
                 for table, rows in selected for row in rows for seed in range(args.seeds)]
        for _, plan in plans:
            check_builds(plan, train_source.image_shape)
        check_shared_stages([plan for _, plan in plans])
        score, network = make_scorer(args, train_source)
        done = {}  # run name -> its metrics.json, for the runs already complete
        resample = {}  # run name -> {sampler field: (recorded, requested)}: sampled again
        for _, plan in plans:
            for stage in plan.stages:
                check_reusable(stage)
            check_reusable(plan)
            done[plan.name] = read_metrics(plan)
            if done[plan.name] is not None:
                check_scored_by(plan, done[plan.name], network)
                changes = sampler_changes(plan)
                if changes:
                    resample[plan.name] = changes
                    done[plan.name] = None
            else:
                for part in (*plan.stages, plan):
                    if not is_complete(part):
                        read_history(part.run_dir)
    except (DatasetError, SelectorError, UnknownFamilyError, ConfigError, ValueError,
            RuntimeError) as err:
        print(f"run_all.py: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    chief = is_chief(strategy)
    if chief:
        print(f"[run_all] profile {profile.name}, dataset {args.dataset} "
              f"({train_source.num_examples} train / {val_source.num_examples} held-out images, "
              f"{train_source.provenance}), strategy {strategy_name(strategy)} x"
              f"{strategy.num_replicas_in_sync}, metrics: {network}")
        print(f"[run_all] writing to {os.path.abspath(out_dir)}; {len(plans)} run(s):")
        listed = set()
        for _, plan in plans:
            for stage in plan.stages:
                if stage.run_dir not in listed:
                    listed.add(stage.run_dir)
                    state = "complete, reused" if is_complete(stage) else "to run"
                    print(f"  {stage.name:<40s} {stage.stage} stage, shared  ({state})")
            state = "complete, skipped" if done[plan.name] is not None else "to run"
            if plan.name in resample:
                state = "complete, to sample again: " + ", ".join(
                    f"{field} {old!r} -> {new!r}" for field, (old, new)
                    in resample[plan.name].items())
            print(f"  {plan.name:<40s} {plan.row.table}  ({state})")
    results, failures = {}, []
    for index, (table, plan) in enumerate(plans, 1):
        if done[plan.name] is not None:
            results[plan.name] = done[plan.name]
            continue
        if chief:
            print(f"\n[run_all] run {index}/{len(plans)}: {plan.name} -> {plan.run_dir}")
        started = time.time()
        try:
            if plan.name in resample:  # trained already: only its samples and scores change
                results[plan.name] = resample_run(plan, train_source=train_source,
                                                  val_source=val_source, strategy=strategy,
                                                  score=score)
            else:
                results[plan.name] = execute_run(plan, train_source=train_source,
                                                 val_source=val_source, strategy=strategy,
                                                 score=score, verbose=not args.quiet)
            if chief:
                print(f"[run_all] {plan.name} done in {time.time() - started:.1f} s")
        except KeyboardInterrupt:
            print(f"\n[run_all] interrupted (Ctrl-C) in run {plan.name}, "
                  f"{_resume_point(plan)}; rerun the same command to resume it from there",
                  file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception:  # keep going: one broken run must not cost the others
            traceback.print_exc()
            failures.append(plan.name)
            print(f"[run_all] {plan.name} FAILED after {time.time() - started:.1f} s",
                  file=sys.stderr)
    report_written = True
    if chief:
        write_tables(out_dir, plans, results, args, profile, network,
                     len(train_source.class_names))
        report_written = write_report_index(out_dir)
    code_003 = run_thesis_003(args, profile, faces_prepared, dataset_003, out_003, strategy)
    if code_003 == EXIT_INTERRUPTED:
        return code_003
    if code_003:
        failures.append("thesis 003")
    if failures:
        print(f"[run_all] {len(failures)} run(s) failed: {', '.join(failures)}", file=sys.stderr)
        return EXIT_RUN_FAILED
    return 0 if report_written else EXIT_RUN_FAILED


def prepare_thesis_003(args, profile, selections, dataset, out_dir):
    """Check everything thesis 003's selected experiments need, before anything trains:
    selectors, step sizes, optimiser, data (64x64 RGB), run folders. None when none selected."""
    from data import open_dataset
    from experiments import bilinear, thesis_003
    from experiments.runner import check_builds, check_reusable, read_metrics
    from training.trainer import read_history

    if not selections:
        return None
    runs = thesis_003.face_runs(selections)
    bilinear_config = (bilinear.config_for(profile.name, args.bilinear_eta)
                       if thesis_003.wants_bilinear(selections) else None)
    check_writable(out_dir, "--out", "pass --out with a folder you can write to")
    prepared = {"bilinear": bilinear_config, "plans": [], "done": {}}
    if not runs:
        return prepared
    plans = thesis_003.plan_faces(runs, profile, dataset=dataset, out_dir=out_dir,
                                  seeds=args.seeds, optimizer=args.optimizer)
    limit = thesis_003.train_limit(profile)
    train = open_dataset(dataset, "train", image_size=thesis_003.IMAGE_SIZE, channels=3,
                         data_dir=args.data_dir, limit=limit)
    val = open_dataset(dataset, held_out_split(dataset), image_size=thesis_003.IMAGE_SIZE,
                       channels=3, data_dir=args.data_dir, limit=profile.val_limit)
    for plan in plans:
        check_builds(plan, train.image_shape)
        check_reusable(plan)
        prepared["done"][plan.name] = read_metrics(plan)
        if prepared["done"][plan.name] is None:
            read_history(plan.run_dir)
    score, network = make_scorer(args, train)
    for plan in plans:
        if prepared["done"][plan.name] is not None:
            check_scored_by(plan, prepared["done"][plan.name], network)
    features = (diversity_features(args, train, network)
                if any(done is None for done in prepared["done"].values()) else None)
    prepared.update(plans=plans, train=train, val=val, score=score, network=network,
                    features=features)
    return prepared


def diversity_features(args, train_source, network):
    """The feature space thesis 003 also measures the control grid's diversity in: the
    runs' metric network, loaded now (an evaluator not yet trained is trained here, before
    any run). None with ``--metrics none``, saying that diversity is then measured in pixel
    space only."""
    from experiments.thesis_003 import FeatureSpace
    from metrics import default_cache_dir, load_feature_network

    if network == "none":
        print("[run_all] thesis 003: --metrics none, so the control grid's diversity is "
              "measured in pixel space only (give --metrics auto|evaluator|inception to "
              "measure it in the metric network's feature space too)")
        return None
    return FeatureSpace.of(load_feature_network(
        network, train_source, cache_dir=default_cache_dir(),
        inception_weights=args.inception_weights, data_dir=args.data_dir))


def run_thesis_003(args, profile, prepared, dataset, out_dir, strategy) -> int:
    """Train (or skip, or resume) the face runs, then write thesis 003's reports."""
    from experiments import thesis_003
    from experiments.runner import execute_run
    from training.strategy import is_chief

    if prepared is None:
        return 0
    chief = is_chief(strategy)
    context = (f"Profile `{profile.name}`, dataset `{dataset}` (64x64). Written by run_all.py.")
    if prepared["bilinear"] is not None and chief:
        thesis_003.run_bilinear(out_dir, profile.name, args.bilinear_eta,
                                f"Profile `{profile.name}`. Written by run_all.py.")
        print(f"[run_all] wrote {os.path.join(out_dir, 'bilinear')}.{{md,csv,json,png}}")
    lines, failures = [], []
    real = next(iter(prepared["train"].batches(16)))[0] if prepared["plans"] else None
    for plan in prepared["plans"]:
        metrics = prepared["done"][plan.name]
        if metrics is None:
            print(f"\n[run_all] thesis 003: {plan.name} -> {plan.run_dir}")
            started = time.time()
            timeline = thesis_003.ControlTimeline(plan.run_dir,
                                                  plan.family_config.control_every, real,
                                                  features=prepared["features"])
            try:
                metrics = execute_run(plan, train_source=prepared["train"],
                                      val_source=prepared["val"], strategy=strategy,
                                      score=prepared["score"], verbose=not args.quiet,
                                      extra_callbacks=[timeline])
            except KeyboardInterrupt:
                print(f"\n[run_all] interrupted (Ctrl-C) in run {plan.name}, "
                      f"{_resume_point(plan)}; rerun the same command to resume it from there",
                      file=sys.stderr)
                return EXIT_INTERRUPTED
            except Exception:  # keep going: one broken run must not cost the others
                traceback.print_exc()
                failures.append(plan.name)
                print(f"[run_all] {plan.name} FAILED after {time.time() - started:.1f} s",
                      file=sys.stderr)
                continue
        if chief:
            lines.append(thesis_003.report_line(plan, metrics))
    if lines and chief:
        thesis_003.write_face_reports(out_dir, lines, context, thesis_003.stand_in_note(dataset))
        print(f"[run_all] wrote {os.path.join(out_dir, 'thesis_003_faces')}.{{md,csv,json}}")
    if failures:
        print(f"[run_all] {len(failures)} thesis 003 run(s) failed: {', '.join(failures)}",
              file=sys.stderr)
        return EXIT_RUN_FAILED
    return 0


def check_writable(folder, what, fix):
    """Refuse, before anything trains, a folder no file can be written in (a file in the
    way, a read-only mount, no permission): each run would otherwise fail at its first
    write, after its training."""
    from common.files import writable_dir_problem

    problem = writable_dir_problem(folder)
    if problem:
        raise RuntimeError(f"{what} {folder}: {problem}; {fix}")


def _network_kind(label) -> str:
    """'none' | 'evaluator' | 'inception' for a metrics.json ``metric_network`` label."""
    if label in (None, "none", "not computed"):
        return "none"
    return "evaluator" if str(label).startswith("evaluator:") else "inception"


def check_scored_by(plan, metrics, network):
    """A complete run is reused only if its numbers come from the network asked for."""
    from experiments.runner import RunError

    label = metrics.get("metric_network")
    if _network_kind(label) != network:
        raise RunError(f"{plan.run_dir} was scored with metric network {label!r}, this "
                       f"command asks for --metrics {network}; choose another --out or "
                       f"rerun with the --metrics it was scored with")


def _resume_point(plan) -> str:
    """Where an interrupted run (or the stage it was in) will resume, in words."""
    import tensorflow as tf

    for part in (plan, *reversed(plan.stages)):
        latest = tf.train.latest_checkpoint(os.path.join(part.run_dir, "checkpoints"))
        if latest:
            where = "" if part is plan else f" (stage {part.name})"
            return f"last checkpoint at step {latest.rsplit('-', 1)[-1]}{where}"
    return "before its first checkpoint"


def make_scorer(args, train_source):
    """The metric function every run calls, or None with ``--metrics none``.

    Generated images are compared with the train split, as TTUR does; its
    statistics are computed once per (dataset, split, network, size, the images
    used) and cached. Everything that can fail is checked here, before any
    training: the cache must be writable and Inception weights must load into the
    network (MetricsError, e.g. ``--metrics inception`` offline without weights).
    """
    if args.metrics == "none":
        return None, "none"
    from metrics import (compute_metrics, default_cache_dir, inception_feature_network,
                         resolve_metric_network)

    cache_dir = default_cache_dir()
    check_writable(cache_dir, "the metrics cache",
                   "set GENBENCH_CACHE to a folder you can write to (or use --metrics none)")
    network = resolve_metric_network(args.metrics, inception_weights=args.inception_weights,
                                     cache_dir=cache_dir)
    if network == "inception":  # load (and keep) the weights now: a bad file fails here
        inception_feature_network(args.inception_weights, cache_dir)

    def score(fake_batches, n_samples, seed):
        return compute_metrics(fake_batches, train_source, network=network, n_samples=n_samples,
                               cache_dir=cache_dir, inception_weights=args.inception_weights,
                               data_dir=args.data_dir, seed=seed, progress=not args.quiet)

    return score, network


def write_report_index(out_dir) -> bool:
    """OUT/README.md (experiments.compare): every table in the folder and, per family, its
    losses side by side. False, with the error printed, if it could not be drawn (the
    tables and the runs are written already: rerunning the command redraws it)."""
    from experiments import compare

    try:
        path = compare.write_readme(compare.load_report(out_dir))
    except compare.ReportError as err:  # no table written: every run failed
        print(f"[run_all] no README.md: {err}", file=sys.stderr)
        return True
    except Exception:  # a drawing bug must not hide that the runs and tables are fine
        traceback.print_exc()
        print(f"[run_all] {out_dir}/README.md could not be written (the runs and tables "
              f"were); rerun the same command to redraw it", file=sys.stderr)
        return False
    print(f"[run_all] wrote {path} (and its figures/)")
    return True


def complete_runs(out_dir, tables, profile, args, num_classes):
    """(table, plan, metrics) of every complete run in ``out_dir/runs`` that this request
    would have made (same profile, dataset, image size, configuration), selected or not,
    so that rerunning a subset keeps the other rows of the tables."""
    from experiments.runner import RunError, plan_run, read_metrics, recorded_identity
    from models import UnknownFamilyError
    from common.config import ConfigError

    found = []
    runs_dir = os.path.join(out_dir, "runs")
    for table in tables:
        for row in table.rows:
            for name in sorted(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else []:
                prefix = f"{row.family}-{row.loss}-"
                if not (name.startswith(prefix) and f"-z{row.latent_size}-s" in name):
                    continue
                seed = name.rsplit("-s", 1)[-1]
                if not seed.isdigit():
                    continue
                try:
                    plan = plan_run(row, int(seed), profile, dataset=args.dataset,
                                    image_size=args.image_size, out_dir=out_dir,
                                    channels=args.channels,
                                    num_classes=num_classes)
                except (UnknownFamilyError, ConfigError):  # a family not (yet) in this checkout
                    continue
                if plan.name != name:
                    continue
                try:
                    matches = recorded_identity(plan) == plan.identity()
                except RunError as err:
                    print(f"[run_all] left out of the tables: {err}", file=sys.stderr)
                    continue
                metrics = read_metrics(plan) if matches else None
                if metrics is not None:
                    found.append((table, plan, metrics))
    return found


def write_tables(out_dir, plans, results, args, profile, network, num_classes):
    from experiments import table_3_1, table_3_2
    from experiments.summary import aggregate, write_table

    context = (f"Profile `{profile.name}`, dataset `{args.dataset}`: every complete run in "
               f"this folder (the seeds column says how many per row). Written by run_all.py.")
    tables = [t for t in (table_3_1.TABLE, table_3_2.TABLE) if t.name in args.tables]
    found = {(table.name, plan.name): (table, plan, metrics) for table, plan, metrics
             in complete_runs(out_dir, tables, profile, args, num_classes)}
    for table, plan in plans:  # this invocation's results, whatever the folder scan saw
        if results.get(plan.name):
            found[(table.name, plan.name)] = (table, plan, results[plan.name])
    by_table = {}
    for table, plan, metrics in found.values():
        by_table.setdefault(table.name, (table, {}))[1].setdefault(plan.row, []).append(metrics)
    for table, by_row in by_table.values():
        lines = []
        for row in table.rows:  # the table's own order, whatever order the runs finished in
            runs = by_row.get(row)
            if not runs:
                continue
            kinds = {_network_kind(r.get("metric_network")) for r in runs}
            if len(kinds) > 1:  # seeds scored by different networks never share a line
                kept = [r for r in runs if _network_kind(r.get("metric_network")) == network]
                print(f"[run_all] {row.key}: left out {len(runs) - len(kept)} seed(s) scored by "
                      f"another metric network than --metrics {network}", file=sys.stderr)
                runs = kept
            if runs:
                lines.append(aggregate(row, sorted(runs, key=lambda r: r.get("seed", 0))))
        write_table(out_dir, table, lines, context)
        print(f"[run_all] wrote {os.path.join(out_dir, table.name)}.{{md,csv,json}}")


def _slug(dataset: str, channels: int = 3, native: int = 3) -> str:
    """The default output folder's name: the dataset, plus ``-gray``/``-rgb`` when the
    run asks for other channels than the dataset's own (their runs never mix)."""
    slug = dataset.replace("folder:", "folder-").replace("/", "_").strip("_") or "dataset"
    return slug if channels == native else f"{slug}-{'gray' if channels == 1 else 'rgb'}"


if __name__ == "__main__":
    sys.exit(main())
