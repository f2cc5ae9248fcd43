"""What one ``run_all.py`` command asks for, light to import (no TensorFlow): the
:class:`Request` the package reads, the choices and bounds of its options, and the
default output folder.
"""
from __future__ import annotations

import dataclasses
import os

from experiments.profiles import PROFILES
from training.runtime import JIT_CHOICES, PRECISION_CHOICES
from training.strategy_names import STRATEGIES

TABLES = ("table_3_1", "table_3_2")
METRIC_CHOICES = ("auto", "inception", "evaluator", "none")
PROFILE_CHOICES = tuple(sorted(PROFILES))
STRATEGY_CHOICES = STRATEGIES
#: thesis 004's dataset when --dataset is not given (thesis 003's: experiments.thesis_003)
DEFAULT_DATASET = "cifar100"
# Bounds that keep a typo from exhausting memory before anything useful happens: the run
# list grows with --seeds, and the families' networks are built for 8- to 256-pixel images
# (the theses use 32 and 64).
MAX_SEEDS = 100
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 256


@dataclasses.dataclass(frozen=True)
class Request:
    """One command's options (``run_all.py --help`` says what each means); None: the
    default, resolved where it is used (the dataset's, the thesis's, reports/...)."""
    profile: str = "paper"
    only: list | None = None  # selectors: family[/loss][@latent], faces[/mode], bilinear
    tables: list = dataclasses.field(default_factory=lambda: list(TABLES))
    dataset: str | None = None
    data_dir: str | None = None
    image_size: int = 32
    channels: int | None = None
    out: str | None = None
    seeds: int = 1
    strategy: str = "auto"
    metrics: str = "auto"
    inception_weights: str | None = None
    optimizer: str | None = None
    bilinear_eta: list | None = None
    quiet: bool = False
    #: ``--set family.field=value``, parsed but not yet typed: (family, field, value text)
    #: triples, converted against the family's config when the runs are planned
    overrides: tuple = ()
    #: ``--plan``: write plan.md/plan.json (costs, memory, hours) and train nothing
    plan: bool = False
    #: ``--max-steps N``: a rehearsal, every stage stops after N steps (never a result)
    max_steps: int | None = None
    #: ``--precision``/``--jit``/``--accumulate``: how the steps run (training.runtime);
    #: "auto" is made concrete for the devices of the run's strategy
    precision: str = "auto"
    jit: str = "auto"
    accumulate: int = 1


def slug(dataset: str, channels: int = 3, native: int = 3) -> str:
    """The default output folder's name: the dataset, plus ``-gray``/``-rgb`` when the
    run asks for other channels than the dataset's own (their runs never mix)."""
    name = dataset.replace("folder:", "folder-").replace("/", "_").strip("_") or "dataset"
    return name if channels == native else f"{name}-{'gray' if channels == 1 else 'rgb'}"


def default_out(profile: str, dataset: str, channels: int = 3, native: int = 3,
                max_steps: int | None = None) -> str:
    """reports/<profile>/<dataset slug>: where a command writes without --out; a
    rehearsal's (``max_steps``) is reports/<profile>/<dataset slug>-rehearsal."""
    rehearsal = "" if max_steps is None else "-rehearsal"
    return os.path.join("reports", profile, slug(dataset, channels, native) + rehearsal)


def override_option(text):
    """--set's syntax (family.field=value); its type is checked against the family's
    config when the runs are planned (experiments.planning.family_overrides)."""
    import argparse

    from common.config import ConfigError, parse_override
    try:
        return parse_override(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--set ")) from None


def add_runtime_arguments(parser) -> None:
    """--precision, --jit and --accumulate: how every run's steps execute (not a family's
    option; ``training.runtime``)."""
    parser.add_argument("--precision", default="auto", choices=PRECISION_CHOICES,
                        help="auto: bfloat16 on TPUs and GPUs of compute capability >= 8.0, "
                             "float16 (loss-scaled) on older GPUs, float32 on CPUs; a run "
                             "trained in half precision is its own run (folder ...-bf16/-fp16)")
    parser.add_argument("--jit", default="auto", choices=JIT_CHOICES,
                        help="XLA-compile the train steps (auto: on where a GPU or TPU is present)")
    parser.add_argument("--accumulate", type=int, default=1, metavar="K",
                        help="K micro-batches per update (the update of the whole batch in "
                             "1/K of the memory; --plan says when a batch needs it); K must "
                             "divide every stage's per-replica batch")


def option_problem(args) -> str | None:
    """What is wrong with parsed command-line options (one line naming the option), or None."""
    if getattr(args, "accumulate", 1) < 1:
        return (f"--accumulate {args.accumulate}: give a positive number of micro-batches "
                f"per update (1: none)")
    if args.max_steps is not None and args.max_steps < 1:
        return (f"--max-steps {args.max_steps}: give a positive number of steps per "
                f"stage (a rehearsal)")
    if not 1 <= args.seeds <= MAX_SEEDS:
        return f"--seeds {args.seeds}: give 1 to {MAX_SEEDS} (seeds 0..N-1 per row)"
    if not MIN_IMAGE_SIZE <= args.image_size <= MAX_IMAGE_SIZE:
        return (f"--image-size {args.image_size}: the families are built for "
                f"{MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} pixels")
    seen = {}
    for family, field, value in args.overrides:
        if seen.setdefault((family, field), value) != value:
            return (f"--set {family}.{field} given twice ({seen[family, field]} and "
                    f"{value}); give it once")
    return None
