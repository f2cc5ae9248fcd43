"""How a run executes on the machine at hand: precision, XLA, gradient accumulation and a
rehearsal's step limit. None of these is a family's option (the presets never hold
them): the command line picks them per run, the trainer applies them to every family
the same way (``models.base.GenerativeModel.configure_steps``).

- :class:`Runtime`: ``precision`` (float32 | bfloat16 | float16), ``jit`` (bool) and
  ``accumulate`` (micro-batches per update), given to ``training.Trainer``.
- :func:`resolve_precision` / :func:`resolve_jit`: ``auto`` made concrete for the
  devices present, with the reason; the refusals (float16 without a GPU) are theirs.
- :func:`check_accumulation`, :func:`check_max_steps`: the one-line ValueErrors the
  command line turns into exit 2 before training.
- :func:`precision_policy`: the Keras dtype policy set around a model's build and
  restored after it (the model reads its precision from its own policy).

Importable without TensorFlow (``run_all.py --help`` lists the choices): TensorFlow and
Keras are imported inside the functions that need them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import typing

#: the precisions a run trains in, and the Keras dtype policy of each
PRECISIONS = ("float32", "bfloat16", "float16")
PRECISION_CHOICES = PRECISIONS + ("auto",)
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
JIT_CHOICES = ("auto", "on", "off")
#: the first GPU generation with bfloat16 tensor cores (Ampere, compute capability 8.0)
BFLOAT16_GPU = (8, 0)
#: the first GPU generation with fast float16 arithmetic (compute capability 5.3)
FLOAT16_GPU = (5, 3)


@dataclasses.dataclass(frozen=True)
class Runtime:
    """How the trainer runs a model's steps.

    precision: "float32", "bfloat16" (Keras' mixed_bfloat16: layers compute in bfloat16,
        weights, optimiser slots, EMAs, losses and logs stay float32) or "float16"
        (mixed_float16, plus dynamic loss scaling); a name, never "auto" (see
        :func:`resolve_precision`).
    jit: XLA-compile each family's step units (``models.base``); see :func:`resolve_jit`.
    accumulate: micro-batches per update (gradients summed, applied once: the update
        of the whole batch); it must divide every stage's per-replica batch.
    """
    precision: str = "float32"
    jit: bool = False
    accumulate: int = 1

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of "
                             f"{', '.join(PRECISIONS)} (or 'auto', via resolve_precision)")
        if not isinstance(self.jit, bool):
            raise ValueError(f"jit must be True or False (resolve_jit makes 'auto'/'on'/'off' "
                             f"one), got {self.jit!r}")
        check_accumulation(self.accumulate)

    @property
    def policy(self) -> str:
        """The Keras dtype policy of the precision."""
        return POLICIES[self.precision]

    def check_batch(self, batch: int, replicas: int = 1, what: str = "batch") -> None:
        """ValueError (one line) when ``accumulate`` does not divide the per-replica batch."""
        check_accumulation(self.accumulate, batch, replicas, what)

    def describe(self) -> str:
        return (f"precision {self.precision}, XLA {'on' if self.jit else 'off'}, "
                f"accumulate {self.accumulate}")


def check_accumulation(accumulate, batch: typing.Optional[int] = None, replicas: int = 1,
                       what: str = "batch") -> int:
    """``accumulate`` as an int, or a one-line ValueError: not a positive integer, or
    (given the global ``batch``) not a divisor of the per-replica batch."""
    if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate < 1:
        raise ValueError(f"accumulate must be a positive integer (micro-batches per update), "
                         f"got {accumulate!r}")
    if batch is None:
        return accumulate
    replicas = int(replicas)
    if batch % replicas:
        raise ValueError(f"the {what} {batch} is not divisible by the {replicas} replicas")
    local = batch // replicas
    if local % accumulate:
        where = (f"the {what} {batch}" if replicas == 1 else
                 f"the per-replica {what} {local} ({batch} over {replicas} replicas)")
        raise ValueError(f"accumulate {accumulate} does not divide {where}")
    return accumulate


def check_max_steps(max_steps) -> typing.Optional[int]:
    """A rehearsal's step limit as an int (None: no limit), or a one-line ValueError."""
    if max_steps is None:
        return None
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer (optimisation steps per "
                         f"stage), got {max_steps!r}")
    return max_steps


# ----------------------------------------------------------------------- devices
@dataclasses.dataclass(frozen=True)
class Device:
    """An accelerator (or the CPU) a run may use: kind "CPU", "GPU" or "TPU"; a name;
    a GPU's compute capability (major, minor) where known."""
    kind: str
    name: str = ""
    compute_capability: typing.Optional[tuple] = None


def local_devices(strategy=None) -> list:
    """The devices the run trains on: a strategy's replicas' kinds (TPU, GPU, CPU), else
    this machine's accelerators (the CPU when it has none), GPUs with their compute
    capability."""
    import tensorflow as tf

    kinds = None
    if strategy is not None:
        try:
            workers = strategy.extended.worker_devices
        except RuntimeError:  # the default strategy: this machine's default device
            workers = None
        if workers is not None:
            kinds = {("TPU" if "TPU" in d.upper() else "GPU" if "GPU" in d.upper() else "CPU")
                     for d in workers}
    tpus = tf.config.list_logical_devices("TPU")
    if (kinds is None and tpus) or (kinds is not None and "TPU" in kinds):
        return [Device("TPU", d.name) for d in tpus] or [Device("TPU")]
    gpus = []
    if kinds is None or "GPU" in kinds:
        for gpu in tf.config.list_physical_devices("GPU"):
            try:
                details = tf.config.experimental.get_device_details(gpu)
            except (ValueError, RuntimeError):
                details = {}
            gpus.append(Device("GPU", details.get("device_name", gpu.name),
                               details.get("compute_capability")))
    return gpus or [Device("CPU", "CPU")]


def _devices(devices):
    if devices is None:
        return local_devices()
    if hasattr(devices, "extended"):  # a tf.distribute strategy
        return local_devices(devices)
    return list(devices)


def _cc(device) -> str:
    cc = device.compute_capability
    return "unknown" if cc is None else f"{cc[0]}.{cc[1]}"


def resolve_precision(name: str = "auto", devices=None) -> tuple:
    """(precision, reason) for the run's ``--precision``, on ``devices`` (a list of
    :class:`Device`, a tf.distribute strategy, or None: this machine).

    auto: bfloat16 on TPUs and on GPUs of compute capability >= 8.0 (bfloat16 tensor
    cores, no loss scaling needed), float16 on older GPUs (>= 5.3; with loss scaling),
    float32 on CPUs and older GPUs. An explicit name is taken as asked, except float16
    where there is no GPU (a CPU or a TPU): ValueError, one line. bfloat16 runs
    everywhere (on a CPU without AVX512-BF16/AMX, or a GPU before 8.0, it is emulated
    and slow; the reason says so).
    """
    if name not in PRECISION_CHOICES:
        raise ValueError(f"unknown precision {name!r}; choose one of "
                         f"{', '.join(PRECISION_CHOICES)}")
    found = _devices(devices)
    kinds = {d.kind for d in found}
    gpus = [d for d in found if d.kind == "GPU"]
    oldest = min(gpus, key=lambda d: d.compute_capability or (0, 0)) if gpus else None
    cc = (oldest.compute_capability or (0, 0)) if oldest else None
    if name == "float16":
        if not gpus:
            where = "a TPU (bfloat16 is its half precision)" if "TPU" in kinds else "a CPU only"
            raise ValueError(f"precision float16 needs a GPU and this run has {where}: "
                             f"use --precision bfloat16, float32 or auto")
        return "float16", f"asked for (GPU {oldest.name}, compute capability {_cc(oldest)})"
    if name == "bfloat16":
        if "TPU" in kinds:
            return "bfloat16", "asked for (TPU: its native matmul type)"
        if gpus and cc < BFLOAT16_GPU:
            return "bfloat16", (f"asked for; GPU {oldest.name} (compute capability "
                                f"{_cc(oldest)} < 8.0) has no bfloat16 tensor cores: "
                                f"float16 is faster there")
        if gpus:
            return "bfloat16", f"asked for (GPU {oldest.name}, compute capability {_cc(oldest)})"
        return "bfloat16", "asked for (CPU: fast only with AVX512-BF16 or AMX)"
    if name == "float32":
        return "float32", "asked for"
    # auto
    if "TPU" in kinds:
        return "bfloat16", "auto: TPU (bfloat16 is its native matmul type)"
    if gpus and cc >= BFLOAT16_GPU:
        return "bfloat16", (f"auto: GPU {oldest.name} has compute capability {_cc(oldest)} "
                            f">= 8.0 (bfloat16 tensor cores)")
    if gpus and cc >= FLOAT16_GPU:
        return "float16", (f"auto: GPU {oldest.name} has compute capability {_cc(oldest)} "
                           f"< 8.0 (no bfloat16 tensor cores): float16 with loss scaling")
    if gpus:
        return "float32", (f"auto: GPU {oldest.name} has compute capability {_cc(oldest)} "
                           f"< 5.3 (no fast half precision)")
    return "float32", "auto: no GPU or TPU (CPU: float32)"


def resolve_jit(value="auto", devices=None) -> bool:
    """The run's ``--jit`` as a bool: "on"/True, "off"/False, or "auto": on where a GPU or
    TPU is present (XLA's CPU convolutions are slower than oneDNN's:
    benchmarks/bench_gan.py)."""
    if value is True or value == "on":
        return True
    if value is False or value == "off":
        return False
    if value != "auto":
        raise ValueError(f"unknown jit setting {value!r}; choose one of {', '.join(JIT_CHOICES)}")
    return any(d.kind in ("GPU", "TPU") for d in _devices(devices))


@contextlib.contextmanager
def precision_policy(precision: str):
    """Keras' global dtype policy set to ``precision``'s while the block runs (a model's
    build), and restored after it, even on an error: the layers built inside keep it,
    nothing built after sees it."""
    import keras

    if precision not in POLICIES:
        raise ValueError(f"unknown precision {precision!r}; choose one of "
                         f"{', '.join(PRECISIONS)}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(POLICIES[precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
