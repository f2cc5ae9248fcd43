"""The run loop, one for both theses: every planned run in turn, trained (or resumed,
or sampled again, or skipped when complete), a failing run not stopping the others.

It runs a :class:`RunSet` (``experiments.planning`` makes them, after checking
everything up front) and returns what each run reached; what to write from that is
``experiments.reporting``'s job.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
import traceback
import typing

from common import files as artifacts
from experiments import runner
from training.checkpoints import latest_checkpoint
from training.strategy import is_chief, strategy_name


class RunInterrupted(Exception):
    """Ctrl-C inside a run: its place is saved and a line has said where it resumes."""


@dataclasses.dataclass
class RunSet:
    """One thesis's runs, planned and checked before anything trains.

    done: run name -> its metrics.json record when complete (skipped), else None.
    resample: run name -> {sampler field: (recorded, requested)} of complete runs that
    are sampled and scored again (``runner.resample_run``).
    header: the progress line's words before each run's name ("{index}" and "{total}"
    are filled in); timed: say how long each run took.
    callbacks: ``callbacks(plan)`` -> extra callbacks for the run's final stage.
    """
    plans: list
    done: dict
    resample: dict
    train_source: object
    val_source: object
    score: typing.Callable | None
    network: str
    header: str = "run {index}/{total}"
    timed: bool = True
    callbacks: typing.Callable = lambda plan: ()


def print_plan(runs: RunSet, *, profile, dataset, out_dir, strategy):
    """The command's first lines: the set-up, then every run (and shared stage) with
    what will happen to it."""
    train, val = runs.train_source, runs.val_source
    print(f"[run_all] profile {profile.name}, dataset {dataset} "
          f"({train.num_examples} train / {val.num_examples} held-out images, "
          f"{train.provenance}), strategy {strategy_name(strategy)} x"
          f"{strategy.num_replicas_in_sync}, metrics: {runs.network}")
    print(f"[run_all] writing to {os.path.abspath(out_dir)}; {len(runs.plans)} run(s):")
    listed = set()
    # a stage runs only for a row that trains; a complete row's checkpoint holds its stages
    trained = {stage.run_dir for plan in runs.plans
               if runs.done[plan.name] is None and plan.name not in runs.resample
               for stage in plan.stages}
    for plan in runs.plans:
        for stage in plan.stages:
            if stage.run_dir not in listed:
                listed.add(stage.run_dir)
                state = ("complete, reused" if runner.is_complete(stage) else "to run"
                         if stage.run_dir in trained else
                         "not needed: the rows that use it are complete, and their "
                         "checkpoints hold its weights")
                print(f"  {stage.name:<40s} {stage.stage} stage, shared  ({state})")
        state = "complete, skipped" if runs.done[plan.name] is not None else "to run"
        if plan.name in runs.resample:
            state = "complete, to sample again: " + ", ".join(
                f"{field} {old!r} -> {new!r}" for field, (old, new)
                in runs.resample[plan.name].items())
        print(f"  {plan.name:<40s} {plan.row.table}  ({state})")


def run(runs: RunSet, *, strategy, verbose: bool = True) -> tuple[dict, list]:
    """Every run of ``runs`` in order: (run name -> metrics.json record, for the complete
    and the finished ones; names of the runs that failed). RunInterrupted on Ctrl-C."""
    chief = is_chief(strategy)
    results, failures = {}, []
    for index, plan in enumerate(runs.plans, 1):
        if runs.done[plan.name] is not None:
            results[plan.name] = runs.done[plan.name]
            continue
        if chief:
            header = runs.header.format(index=index, total=len(runs.plans))
            print(f"\n[run_all] {header}: {plan.name} -> {plan.run_dir}")
        started = time.time()
        callbacks = tuple(runs.callbacks(plan))
        try:
            if plan.name in runs.resample:  # trained already: only its samples and scores change
                results[plan.name] = runner.resample_run(
                    plan, train_source=runs.train_source, val_source=runs.val_source,
                    strategy=strategy, score=runs.score)
            else:
                results[plan.name] = runner.execute_run(
                    plan, train_source=runs.train_source, val_source=runs.val_source,
                    strategy=strategy, score=runs.score, verbose=verbose,
                    extra_callbacks=callbacks)
            if chief and runs.timed:
                print(f"[run_all] {plan.name} done in {time.time() - started:.1f} s")
        except KeyboardInterrupt:
            print(f"\n[run_all] interrupted (Ctrl-C) in run {plan.name}, "
                  f"{resume_point(plan)}; rerun the same command to resume it from there",
                  file=sys.stderr)
            raise RunInterrupted(plan.name) from None
        except Exception as err:  # keep going: one broken run must not cost the others
            if isinstance(err, artifacts.DiskFull):  # ... but a full disk: every run would fail
                raise
            if artifacts.is_disk_full(err):
                raise artifacts.disk_full(plan.run_dir, f"run {plan.name}") from err
            traceback.print_exc()
            failures.append(plan.name)
            print(f"[run_all] {plan.name} FAILED after {time.time() - started:.1f} s",
                  file=sys.stderr)
    return results, failures


def resume_point(plan) -> str:
    """Where an interrupted run (or the stage it was in) will resume, in words."""
    for part in (plan, *reversed(plan.stages)):
        latest = latest_checkpoint(part.run_dir)
        if latest:
            where = "" if part is plan else f" (stage {part.name})"
            return f"last checkpoint at step {latest.rsplit('-', 1)[-1]}{where}"
    return "before its first checkpoint"
