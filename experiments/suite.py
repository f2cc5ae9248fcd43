"""One command, start to end: both theses planned and checked up front, their runs
trained, their reports written.

    plan (experiments.planning) -> run (experiments.grid) -> write (experiments.reporting)

``run_all.py`` parses the command line into an ``experiments.options.Request``, calls
:func:`run` and turns what it returns or raises into the exit status.
"""
from __future__ import annotations

import dataclasses
import os
import sys

from common.config import ConfigError
from data import DatasetError, native_channels
from experiments import grid, planning, reporting, thesis_003
from experiments.options import DEFAULT_DATASET, default_out
from experiments.profiles import get_profile
from experiments.tables import SelectorError
from models import UnknownFamilyError
from training.runtime import Runtime, resolve_jit, resolve_precision
from training.strategy import choose_strategy, is_chief

#: what a bad command raises while it is planned (nothing has trained yet)
BAD_INPUT = (DatasetError, SelectorError, UnknownFamilyError, ConfigError, ValueError,
             RuntimeError)


class BadRequest(Exception):
    """The command cannot run as given (the message says why); nothing was trained."""


def run(request) -> bool:
    """Run the command ``request`` asks for; True when every run and report was written.

    BadRequest before anything trains; grid.RunInterrupted on Ctrl-C in a run (a line
    has said where it resumes). A failing run does not stop the others: lines on stderr
    name the failures and the result is False.
    """
    profile = get_profile(request.profile)
    only_004, only_003 = thesis_003.split_selectors(request.only)
    dataset_003 = request.dataset or thesis_003.DEFAULT_DATASET
    out_003 = request.out or default_out(profile.name, dataset_003,
                                         max_steps=request.max_steps)
    dataset = request.dataset or DEFAULT_DATASET
    try:
        overrides = planning.family_overrides(request.overrides, only_004, request.tables,
                                              profile)
        native = native_channels(dataset)
        request = dataclasses.replace(request, dataset=dataset,
                                      channels=request.channels or native)
        out_dir = request.out or default_out(profile.name, dataset, request.channels, native,
                                             max_steps=request.max_steps)
        if request.plan:  # train nothing: the plan of thesis 004's runs
            return _plan(request, profile, only_004, only_003, out_dir, overrides)
        strategy = choose_strategy(request.strategy)
        runtime = _runtime(request, strategy)
        faces = planning.plan_thesis_003(request, profile, only_003, dataset_003, out_003)
    except BAD_INPUT as err:
        raise BadRequest(str(err)) from err
    if only_004 == []:  # only thesis 003 was selected
        return _thesis_003(faces, request, profile, strategy)
    try:
        tables = planning.plan_thesis_004(request, profile, only_004, out_dir, overrides,
                                          runtime=runtime,
                                          replicas=strategy.num_replicas_in_sync)
    except BAD_INPUT as err:
        raise BadRequest(str(err)) from err
    chief = is_chief(strategy)
    if chief:
        grid.print_plan(tables.runs, profile=profile, dataset=request.dataset, out_dir=out_dir,
                        strategy=strategy)
    results, failures = grid.run(tables.runs, strategy=strategy, verbose=not request.quiet)
    report_written = True
    if chief:
        reporting.write_tables(tables, results, request, profile)
        report_written = reporting.write_report_index(out_dir)
    if not _thesis_003(faces, request, profile, strategy):
        failures.append("thesis 003")
    if failures:
        print(f"[run_all] {len(failures)} run(s) failed: {', '.join(failures)}", file=sys.stderr)
        return False
    return report_written


def _runtime(request, strategy):
    """The Runtime of thesis 004's runs: ``--precision``/``--jit`` made concrete for the
    strategy's devices (a line says which and why), ``--accumulate``; ValueError (one
    line) for float16 without a GPU."""
    precision, reason = resolve_precision(request.precision, strategy)
    jit = resolve_jit(request.jit, strategy)
    runtime = Runtime(precision=precision, jit=jit, accumulate=request.accumulate)
    if is_chief(strategy):
        print(f"[run_all] precision {precision} ({reason}); XLA {'on' if jit else 'off'} "
              f"(--jit {request.jit}); accumulate {request.accumulate}", flush=True)
    return runtime


def _plan(request, profile, only_004, only_003, out_dir, overrides) -> bool:
    """``--plan``: plan.md and plan.json of thesis 004's selected runs (experiments.forecast)."""
    from experiments import forecast

    if only_003:
        print(f"[plan] thesis 003's {', '.join(only_003)} not planned: --plan covers thesis "
              f"004's tables (docs/thesis-003.md gives the face runs' costs)")
    if only_004 == []:
        return True
    forecast.run_plan(request, profile, only_004, out_dir, overrides)
    return True


def _thesis_003(thesis, request, profile, strategy) -> bool:
    """The bilinear game, then the face runs and their table; False when a run failed."""
    if thesis is None:
        return True
    chief = is_chief(strategy)
    if thesis.bilinear is not None and chief:
        thesis_003.run_bilinear(thesis.out_dir, profile.name, request.bilinear_eta,
                                f"Profile `{profile.name}`. Written by run_all.py.")
        print(f"[run_all] wrote {os.path.join(thesis.out_dir, 'bilinear')}.{{md,csv,json,png}}")
    if thesis.runs is None:
        return True
    results, failures = grid.run(thesis.runs, strategy=strategy, verbose=not request.quiet)
    if chief:
        reporting.write_face_table(thesis, results, profile)
    if failures:
        print(f"[run_all] {len(failures)} thesis 003 run(s) failed: {', '.join(failures)}",
              file=sys.stderr)
        return False
    return True
