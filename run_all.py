#!/usr/bin/env python
"""Regenerate the thesis tables: train every selected run, score it, write the reports.

    python run_all.py [--profile smoke|quick|paper] [--only SEL ...] [--dataset NAME]
                      [--data-dir PATH] [--out DIR] [--seeds N] [--strategy ...]

SEL is family[/loss][@latent] (vae, vae/wae, vae/elbo@2048). Runs land in
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
    parser.add_argument("--dataset", default="cifar100",
                        help="cifar100 (the thesis's), cifar10, celeb_a, fashion_mnist, mnist, "
                             "folder:PATH or synthetic")
    parser.add_argument("--data-dir", default=None,
                        help="tfds data_dir, or a folder holding the official archives/idx files")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--out", default=None, help="default: reports/<profile>/<dataset>")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per row")
    parser.add_argument("--strategy", default="auto", choices=STRATEGIES)
    parser.add_argument("--metrics", default="auto",
                        choices=["auto", "inception", "evaluator", "none"],
                        help="auto: Inception if its weights are at hand, else the evaluator")
    parser.add_argument("--inception-weights", default=None,
                        help="path to inception-2015-12-05.tgz or the FID .pth (offline machines)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
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
    args = parse_args(argv)
    from data import DatasetError, open_dataset
    from training.config import ConfigError
    from experiments.profiles import get_profile
    from experiments.runner import (check_builds, check_shared_stages, execute_run,
                                    is_complete, plan_run)
    from training.strategy import choose_strategy, is_chief, strategy_name
    from experiments.tables import SelectorError
    from models import UnknownFamilyError

    profile = get_profile(args.profile)
    out_dir = args.out or os.path.join("reports", profile.name, _slug(args.dataset))
    try:
        selected = select_rows(args.only, args.tables)
        strategy = choose_strategy(args.strategy)
        train_source = open_dataset(args.dataset, "train", image_size=args.image_size,
                                    data_dir=args.data_dir, limit=profile.train_limit)
        val_source = open_dataset(args.dataset, held_out_split(args.dataset),
                                  image_size=args.image_size, data_dir=args.data_dir,
                                  limit=profile.val_limit)
        plans = [(table, plan_run(row, seed, profile, dataset=args.dataset,
                                  image_size=args.image_size, out_dir=out_dir))
                 for table, rows in selected for row in rows for seed in range(args.seeds)]
        for _, plan in plans:
            check_builds(plan, train_source.image_shape)
        check_shared_stages([plan for _, plan in plans])
        score, network = make_scorer(args, train_source)
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
            state = "complete, skipped" if is_complete(plan) else "to run"
            print(f"  {plan.name:<40s} {plan.row.table}  ({state})")
    results, failures = {}, []
    for index, (table, plan) in enumerate(plans, 1):
        if is_complete(plan):
            from training.artifacts import read_json
            results[plan.name] = read_json(os.path.join(plan.run_dir, "metrics.json"))
            continue
        if chief:
            print(f"\n[run_all] run {index}/{len(plans)}: {plan.name} -> {plan.run_dir}")
        started = time.time()
        try:
            results[plan.name] = execute_run(plan, train_source=train_source,
                                             val_source=val_source, strategy=strategy,
                                             score=score, verbose=not args.quiet)
            if chief:
                print(f"[run_all] {plan.name} done in {time.time() - started:.1f} s")
        except Exception:  # keep going: one broken run must not cost the others
            traceback.print_exc()
            failures.append(plan.name)
            print(f"[run_all] {plan.name} FAILED after {time.time() - started:.1f} s",
                  file=sys.stderr)
    if chief:
        write_tables(out_dir, plans, results, args, profile)
    if failures:
        print(f"[run_all] {len(failures)} run(s) failed: {', '.join(failures)}", file=sys.stderr)
        return EXIT_RUN_FAILED
    return 0


def make_scorer(args, train_source):
    """The metric function every run calls, or None with ``--metrics none``.

    Generated images are compared with the train split, as TTUR does; its
    statistics are computed once per (dataset, split, network, size) and cached.
    Raises MetricsError up front (e.g. ``--metrics inception`` offline without weights).
    """
    if args.metrics == "none":
        return None, "none"
    from metrics import compute_metrics, default_cache_dir, resolve_metric_network

    cache_dir = default_cache_dir()
    network = resolve_metric_network(args.metrics, inception_weights=args.inception_weights,
                                     cache_dir=cache_dir)

    def score(fake_batches, n_samples, seed):
        return compute_metrics(fake_batches, train_source, network=network, n_samples=n_samples,
                               cache_dir=cache_dir, inception_weights=args.inception_weights,
                               data_dir=args.data_dir, seed=seed, progress=not args.quiet)

    return score, network


def write_tables(out_dir, plans, results, args, profile):
    from experiments.summary import aggregate, write_table

    context = (f"Profile `{profile.name}`, dataset `{args.dataset}`, seeds {args.seeds}; "
               f"only rows that ran are listed. Written by run_all.py.")
    tables = {}
    for table, plan in plans:
        if plan.name in results and results[plan.name]:
            tables.setdefault(table.name, (table, {}))[1].setdefault(plan.row, []).append(
                results[plan.name])
    for table, by_row in tables.values():
        lines = [aggregate(row, runs) for row, runs in by_row.items()]
        write_table(out_dir, table, lines, context)
        print(f"[run_all] wrote {os.path.join(out_dir, table.name)}.{{md,csv,json}}")


def _slug(dataset: str) -> str:
    return dataset.replace("folder:", "folder-").replace("/", "_").strip("_") or "dataset"


if __name__ == "__main__":
    sys.exit(main())
