#!/usr/bin/env python
"""Regenerate the thesis tables: train every selected run, score it, write the reports.

    python run_all.py [--profile smoke|quick|paper] [--only SEL ...] [--dataset NAME]
                      [--data-dir PATH] [--out DIR] [--seeds N] [--strategy ...]
                      [--set FAMILY.FIELD=VALUE ...] [--plan] [--max-steps N]
                      [--precision auto|float32|bfloat16|float16] [--jit auto|on|off]
                      [--accumulate K]

SEL is family[/loss][@latent] (vae, vae/wae, vae/elbo@2048), or one of thesis 003's
experiments: faces, faces/faithful, faces/fixed, faces/optimizers, bilinear. Runs land in
OUT/runs/<family>-<loss>-b<batch>-z<latent>-s<seed>/ and the tables in OUT/.
Complete runs are skipped, interrupted ones resume from their last checkpoint,
a failing run does not stop the others, and the exit status names the failures.
``--plan`` trains nothing: it writes OUT/plan.md and plan.json (what every run costs,
whether it fits, the hours on T4/A100/H100 and on this machine). ``--max-steps N`` is a
rehearsal: every stage stops after N steps, in OUT-rehearsal and ...-rehearsal<N> folders.

This file is the command line only: ``experiments.suite`` runs the command (planning,
the run loop, the reports), imported after the arguments are parsed so that ``--help``
and a mistyped option answer without starting TensorFlow.
"""
from __future__ import annotations

import os

# Before anything imports TensorFlow: its native (C++) log lines, such as "failed call to
# cuInit" on a machine without a GPU, would precede every one-line error on stderr.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import sys  # noqa: E402

from experiments.options import (METRIC_CHOICES, PROFILE_CHOICES, STRATEGY_CHOICES, TABLES,
                                 Request, add_runtime_arguments, option_problem,
                                 override_option)

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1
EXIT_INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C (128 + SIGINT)


def parse_args(argv=None) -> Request:
    """The command line as a Request (argparse exits with status 2 on a bad option)."""
    default = Request()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=default.profile, choices=PROFILE_CHOICES,
                        help="smoke: seconds (tests); quick: CPU minutes; paper: thesis settings")
    parser.add_argument("--only", nargs="+", default=None, metavar="SEL",
                        help="family[/loss][@latent] selectors (default: every implemented family)")
    parser.add_argument("--tables", nargs="+", default=default.tables,
                        choices=TABLES, help="which experiments to run")
    parser.add_argument("--dataset", default=None,
                        help="cifar100 (thesis 004's default), cifar10, celeb_a (thesis 003's "
                             "default), fashion_mnist, mnist, folder:PATH or synthetic")
    parser.add_argument("--data-dir", default=None,
                        help="tfds data_dir, or a folder holding the official archives/idx files")
    parser.add_argument("--image-size", type=int, default=default.image_size)
    parser.add_argument("--channels", type=int, default=None, choices=[1, 3],
                        help="1 (gray) or 3 (RGB); default: the dataset's own (1 for "
                             "fashion_mnist and mnist, else 3)")
    parser.add_argument("--out", default=None, help="default: reports/<profile>/<dataset>")
    parser.add_argument("--seeds", type=int, default=default.seeds, help="seeds 0..N-1 per row")
    parser.add_argument("--strategy", default=default.strategy, choices=STRATEGY_CHOICES)
    parser.add_argument("--metrics", default=default.metrics, choices=METRIC_CHOICES,
                        help="auto: Inception if its weights are at hand, else the evaluator")
    parser.add_argument("--inception-weights", default=None,
                        help="path to inception-2015-12-05.tgz or the FID .pth (offline machines)")
    parser.add_argument("--optimizer", default=None,
                        help="thesis 003 face runs: train with this optimiser instead of the "
                             "mode's (rmsprop, adam, extra_adam, past_extra_adam, extra_sgd, ...)")
    parser.add_argument("--bilinear-eta", type=float, nargs="+", default=None, metavar="ETA",
                        help="step sizes of the bilinear game (default 0.05 0.2 0.5 0.9)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], type=override_option,
                        metavar="FAMILY.FIELD=VALUE",
                        help="change one field of a family's config, e.g. --set "
                             "gan.g_learning_rate=0.002 (repeatable): checked against the "
                             "field's type, recorded in the run's config.json and folder name "
                             "(runs/<row>-s<seed>+g_learning_rate=0.002), marked in the tables")
    parser.add_argument("--plan", action="store_true",
                        help="train nothing: write plan.md and plan.json into --out (per run "
                             "and stage: parameters, FLOPs, memory at the batch, hours on "
                             "T4/A100/H100 and on this machine, whether it fits) and print it")
    parser.add_argument("--max-steps", type=int, default=None, metavar="N",
                        help="a rehearsal: every stage stops after N steps; written to "
                             "<default out>-rehearsal, run folders named ...-rehearsal<N>, "
                             "tables titled REHEARSAL: never reused or shown as results")
    add_runtime_arguments(parser)  # --precision, --jit, --accumulate
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    problem = option_problem(args)
    if problem:
        parser.error(problem)
    args.overrides = tuple(dict.fromkeys(args.overrides))
    return Request(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Request)})


def main(argv=None) -> int:
    try:
        request = parse_args(argv)
        if request.plan:  # the plan measures activations with the CPU allocator's statistics
            os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
        from common.files import DiskFull
        from experiments import grid, suite  # TensorFlow starts here, after the parsing

        try:
            succeeded = suite.run(request)
        except suite.BadRequest as err:
            print(f"run_all.py: error: {err}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except grid.RunInterrupted:  # its place is saved; a line has said where
            return EXIT_INTERRUPTED
        except DiskFull as err:  # one line naming the folder and its free space: nothing lost
            print(f"run_all.py: error: {err}", file=sys.stderr)
            return EXIT_RUN_FAILED
        return 0 if succeeded else EXIT_RUN_FAILED
    except KeyboardInterrupt:  # outside a run (data, metrics set-up, tables): nothing to resume
        print("\n[run_all] interrupted (Ctrl-C); rerun the same command to continue: complete "
              "runs are skipped and interrupted ones resume", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
