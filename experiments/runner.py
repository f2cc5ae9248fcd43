"""Planning and executing runs: one table row x one seed -> one run folder.

A run folder ``OUT/runs/<family>-<loss>-b<batch>-z<latent>-s<seed>/`` (plus ``-bf16``/``-fp16``
for a run trained in half precision, ``-rehearsal<N>`` for a rehearsal and
``+field=value...`` for ``run_all.py --set`` overrides, ``common.config.overrides_label``) holds
config.json (written first), the trainer's files (checkpoints/, history.csv,
loss_curves.png, samples/, tensorboard/), then samples.png, samples.npz and,
last, metrics.json: a run is complete exactly when metrics.json exists.

Families with several stages (diffusion: autoencoder, then denoiser) train their
earlier stages first, each in its own folder
``OUT/runs/<family>-<stage>-z<latent>-s<seed>/`` shared by every loss row that
agrees on the stage's fields (the six diffusion rows train two autoencoders);
the row's own folder then holds the final stage, built on the restored, frozen
earlier stages (``experiments.runs.load_run``).

A plan carries its family (``models.Family``), resolved once by :func:`plan_run`;
config.json and metrics.json are written as ``common.run_record`` records.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import time

import keras
import numpy as np
import tensorflow as tf

from common import files as artifacts
from common.config import ConfigError, from_dict, overrides_label, to_jsonable
from common.run_record import METRICS_FILE, NotARecord, RunConfig, RunMetrics, StageMetrics
from common.version import __version__
from experiments import figures as report_figures
from experiments.profiles import Profile
from experiments.runs import load_run
from experiments.tables import Row
from metrics import RESULT_KEYS, uint8_batches
from models import Family, get_family
from training.config import TrainConfig
from training.runtime import Runtime
from training.strategy import is_chief, strategy_name
from training.trainer import Trainer


class RunError(RuntimeError):
    pass


#: The metric values in metrics.json (None until scored).
SCORE_KEYS = RESULT_KEYS[3:]
#: metrics.json's scores of a run not scored (``--metrics none``)
UNSCORED = {"metric_network": "not computed", "metric_network_sha256": None,
            **{k: None for k in SCORE_KEYS}}


@dataclasses.dataclass
class StagePlan:
    """A first stage of a family (e.g. the diffusion autoencoder), shared by the rows
    that agree on its fields; ``identity`` is what must match to reuse or resume it."""
    family: Family
    stage: str  # the stage's name (``spec`` is the stage itself)
    family_config: object
    train_config: TrainConfig
    batch_size: int
    profile: str
    dataset: str
    image_size: int
    seed: int
    run_dir: str
    inputs: dict  # earlier stage name -> its StagePlan
    channels: int = 3  # 1 for gray datasets (data.native_channels), unless asked otherwise
    #: ``--set`` values of the stage's shared fields (its folder name says them too)
    overrides: dict = dataclasses.field(default_factory=dict)
    #: a rehearsal's step limit (``run_all.py --max-steps``; None: the planned length)
    max_steps: int | None = None
    #: precision, XLA and accumulation (``--precision``/``--jit``/``--accumulate``)
    runtime: Runtime = dataclasses.field(default_factory=Runtime)

    @property
    def name(self) -> str:
        return os.path.basename(self.run_dir)

    @property
    def spec(self):
        """The family's stage this plan trains (``models.Stage``)."""
        return next(s for s in self.family.stages if s.name == self.stage)

    def identity(self) -> dict:
        identity = {"family": self.family.name, "stage": self.stage,
                    "fields": {f: getattr(self.family_config, f)
                               for f in self.spec.shared_fields},
                    "batch_size": self.batch_size, "train_config": self.train_config,
                    "profile": self.profile, "dataset": self.dataset,
                    "image_size": self.image_size, "channels": self.channels,
                    "seed": self.seed,
                    "inputs": {k: v.identity() for k, v in self.inputs.items()}}
        if self.overrides:  # stages without --set keep the identity they always had
            identity["overrides"] = self.overrides
        if self.max_steps is not None:  # a rehearsal is never taken for a stage
            identity["max_steps"] = self.max_steps
        identity.update(precision_identity(self.runtime))
        return to_jsonable(identity)


@dataclasses.dataclass
class RunPlan:
    """Everything that defines one run; ``identity`` is what must match to resume it.

    family: the row's family (``models.Family``), resolved once when planned.
    stages: the family's earlier stages this run needs, in order (empty for
    one-stage families); they run first and are shared with other rows.
    overrides: the ``--set`` values that change what is trained (sampler fields
    excluded: they change no weight, ``Family.sampler_fields``), in its identity and
    its folder name (``run_name``), so a run never stands in for one trained otherwise.
    """
    row: Row
    family: Family
    seed: int
    family_config: object
    train_config: TrainConfig
    profile: str
    dataset: str
    image_size: int
    n_samples: int
    run_dir: str
    stages: list = dataclasses.field(default_factory=list)
    channels: int = 3  # 1 for gray datasets (data.native_channels), unless asked otherwise
    overrides: dict = dataclasses.field(default_factory=dict)
    #: a rehearsal's step limit per stage (``run_all.py --max-steps``): its folder names
    #: say ``rehearsal<N>`` and its identity holds it, so it is never a result
    max_steps: int | None = None
    #: precision, XLA and accumulation (``--precision``/``--jit``/``--accumulate``): the
    #: precision is part of the identity and the folder name, XLA and accumulation are not
    #: (the same update, tested equal: tests/test_xla.py, tests/test_accumulation.py)
    runtime: Runtime = dataclasses.field(default_factory=Runtime)

    @property
    def name(self) -> str:
        return os.path.basename(self.run_dir)

    @property
    def inputs(self) -> dict:
        return {s.stage: s for s in self.stages}

    def identity(self) -> dict:
        identity = {"family": self.row.family, "loss": self.row.loss,
                    "family_config": self.family_config,
                    "train_config": self.train_config, "profile": self.profile,
                    "dataset": self.dataset, "image_size": self.image_size,
                    "channels": self.channels, "seed": self.seed}
        if self.stages:  # one-stage families keep the identity they always had
            identity["inputs"] = {s.stage: s.identity() for s in self.stages}
        if self.overrides:  # as do runs without --set
            identity["overrides"] = self.overrides
        if self.max_steps is not None:  # a rehearsal is never taken for a run
            identity["max_steps"] = self.max_steps
        identity.update(precision_identity(self.runtime))
        return to_jsonable(identity)


def batches_per_step(family_config) -> int:
    """Data batches one train step of the final stage consumes (the family config's
    ``batches_per_step()``, a ``models.FamilyConfig`` method: a WGAN's critic steps, else 1)."""
    return int(family_config.batches_per_step())


#: how many samples a rehearsal draws and scores (the smoke profile's number): enough to
#: run the sampler and the metrics end to end, not to measure anything
REHEARSAL_SAMPLES = 64


#: the folder-name mark of a run trained in half precision (float32 runs have none)
PRECISION_MARKS = {"float32": "", "bfloat16": "-bf16", "float16": "-fp16"}


def precision_identity(runtime: Runtime) -> dict:
    """The precision in a run's identity, when it is not float32 (float32 runs keep the
    identity they always had): a run trained in one precision never stands in for
    another. XLA and accumulation compute the same update, so they are recorded in
    config.json's ``runtime`` but not matched."""
    return {} if runtime.precision == "float32" else {"precision": runtime.precision}


def rehearsal_mark(max_steps) -> str:
    """``-rehearsal<N>`` in the folder names of a rehearsal's runs (``--max-steps N``)."""
    return "" if max_steps is None else f"-rehearsal{int(max_steps)}"


def run_name(family, loss, batch_size, latent_size, seed, overrides=None,
             max_steps=None, precision="float32") -> str:
    """``<family>-<loss>-b<batch>-z<latent>-s<seed>``, then ``-bf16``/``-fp16`` for a half
    precision run, ``-rehearsal<N>`` for a rehearsal (``max_steps``), plus
    ``+field=value`` per ``--set`` override (``common.config.overrides_label``)."""
    return (f"{family}-{loss}-b{batch_size}-z{latent_size}-s{seed}{PRECISION_MARKS[precision]}"
            f"{rehearsal_mark(max_steps)}{overrides_label(overrides)}")


def stage_name(family, stage, latent_size, seed, overrides=None, max_steps=None,
               precision="float32") -> str:
    return (f"{family}-{stage}-z{latent_size}-s{seed}{PRECISION_MARKS[precision]}"
            f"{rehearsal_mark(max_steps)}{overrides_label(overrides)}")


def _rehearsal_config(train: TrainConfig, max_steps) -> TrainConfig:
    """A rehearsal's stage validates on at most ``max_steps`` batches (the paper profile
    validates on the whole held-out split every epoch)."""
    if max_steps is None:
        return train
    val = max_steps if train.val_batches is None else min(train.val_batches, max_steps)
    return dataclasses.replace(train, val_batches=val)


def _train_config(family, profile: Profile, stage, seed) -> TrainConfig:
    values = {**profile.train_config(seed), **family.stage_train_overrides(profile.name, stage)}
    return from_dict(TrainConfig, values, where=f"{family.name} preset {profile.name!r}")


def plan_run(row: Row, seed: int, profile: Profile, *, dataset: str, image_size: int,
             out_dir: str, overrides: dict | None = None,
             num_classes: int | None = None, channels: int = 3,
             cli_overrides: dict | None = None, max_steps: int | None = None,
             runtime: Runtime | None = None) -> RunPlan:
    """The run of ``row`` at ``seed`` under ``profile``; config errors surface here, up front.

    overrides: family fields that define the experiment (thesis 003's modes), applied
    over the preset.
    num_classes: the dataset's number of classes, given to families whose config
    has a ``num_classes`` field (class-conditional models).
    channels: of the images the run trains on and is scored in (part of its identity).
    cli_overrides: ``run_all.py --set`` values (typed), applied last: those that change
    the config (a value equal to the preset's is no override) and are not sampler fields
    go into the run's identity and folder name, and into a first stage's where they are
    its shared fields; sampler fields change only ``family_config`` (a finished run is
    sampled again, ``sampler_changes``).
    max_steps: a rehearsal (``run_all.py --max-steps``): every stage stops after that many
    steps, validates on as many batches at most and the run samples
    ``REHEARSAL_SAMPLES`` images; its folders are named ``...-rehearsal<N>`` and its
    identity holds ``max_steps``, so it is never reused or tabulated as a result.
    runtime: precision, XLA, accumulation (None: float32, no XLA, one batch per update).
    """
    runtime = Runtime() if runtime is None else runtime
    family = get_family(row.family)
    family.loss(row.loss)  # resolved once, here: an unknown name raises UnknownLossError
    batch = profile.batch_size(row.batch_size)
    cap = family.max_batch_size(profile.name)
    batch = batch if cap is None else min(batch, cap)
    values = {**family.preset(profile.name), **(overrides or {}),
              "loss": row.loss, "batch_size": batch, "latent_size": row.latent_size}
    if num_classes is not None and "num_classes" in {
            f.name for f in dataclasses.fields(family.config_cls)}:
        values["num_classes"] = int(num_classes)
    config = from_dict(family.config_cls, values, where=f"{row.family} run")
    changed = {}
    if cli_overrides:
        values = {**values, **cli_overrides}
        plain, config = config, from_dict(family.config_cls, values, where=f"{row.family} run")
        changed = {k: getattr(config, k) for k in sorted(cli_overrides)
                   if k not in family.sampler_fields
                   and to_jsonable(getattr(config, k)) != to_jsonable(getattr(plain, k))}
    try:  # the family's own checks of its options
        config.validate()
    except ValueError as err:
        raise ConfigError(f"{row.key}: {err}") from err
    stages = []
    for stage in family.stages_for(config)[:-1]:
        shared = {k: v for k, v in changed.items() if k in stage.shared_fields}
        stages.append(StagePlan(
            family=family, stage=stage.name, family_config=config,
            train_config=_rehearsal_config(_train_config(family, profile, stage, seed),
                                           max_steps),
            batch_size=int(getattr(config, stage.batch_field)), profile=profile.name,
            dataset=dataset, image_size=image_size, seed=seed,
            run_dir=os.path.join(out_dir, "runs",
                                 stage_name(row.family, stage.name, row.latent_size, seed,
                                            shared, max_steps, runtime.precision)),
            inputs={s.stage: s for s in stages}, channels=int(channels), overrides=shared,
            max_steps=max_steps, runtime=runtime))
    train = _rehearsal_config(_train_config(family, profile, family.final_stage, seed),
                              max_steps)
    name = run_name(row.family, row.loss, batch, row.latent_size, seed, changed, max_steps,
                    runtime.precision)
    n_samples = profile.n_samples if max_steps is None else min(profile.n_samples,
                                                                REHEARSAL_SAMPLES)
    return RunPlan(row=row, family=family, seed=seed, family_config=config, train_config=train,
                   profile=profile.name, dataset=dataset, image_size=image_size,
                   n_samples=n_samples, run_dir=os.path.join(out_dir, "runs", name),
                   stages=stages, channels=int(channels), overrides=changed,
                   max_steps=max_steps, runtime=runtime)


def check_builds(plan: RunPlan, image_shape):
    """Build the run's models (every stage) once, up front, so a shape or config problem
    is reported before hours of other runs rather than after."""
    try:
        plan.family.build(plan.family_config, image_shape, plan.family_config.batch_size,
                          seed=plan.seed)
    except ValueError as err:
        raise ConfigError(f"{plan.name}: {err}") from err


def check_shared_stages(plans):
    """Two rows that would share a first-stage folder must agree on what it is, and a
    folder already there must hold that stage (same dataset, image size, profile,
    fields): checked up front, before anything trains."""
    seen = {}
    for plan in plans:
        for stage in plan.stages:
            identity = stage.identity()
            saved = _saved_identity(stage.run_dir)
            if saved is not None and saved != identity:
                differs = identity_differences(saved, identity)  # fields.latent_size: ...
                shown = "; ".join(differs[:3]) + (" ..." if len(differs) > 3 else "")
                raise ConfigError(f"{stage.run_dir} holds a {stage.stage} stage trained with "
                                  f"other settings ({shown}); delete it or choose another "
                                  f"--out")
            if seen.setdefault(stage.run_dir, identity) != identity:
                raise ConfigError(f"two rows need different {stage.stage} stages in the same "
                                  f"folder {stage.run_dir}; give them the same "
                                  f"{', '.join(stage.spec.shared_fields)}")


def _metrics_record(plan):
    """The metrics.json record type of a plan: a first stage's, or a table row's run's."""
    return StageMetrics if isinstance(plan, StagePlan) else RunMetrics


def read_metrics(plan):
    """The run's (or stage's) metrics.json (a RunMetrics or StageMetrics record), or None
    when it is missing or damaged.

    A damaged file (not JSON, not an object, another run's) marks the run incomplete, so
    rerunning finishes it again from its checkpoints instead of one bad file stopping the
    suite; a line says so.
    """
    kind = _metrics_record(plan)
    path = kind.path(plan.run_dir)
    if not os.path.exists(path):
        return None
    try:
        metrics = kind.read(plan.run_dir)
    except NotARecord:
        problem = "not the metrics of this run"
    except (OSError, ValueError) as err:
        problem = f"not readable JSON ({type(err).__name__})"
    else:
        if metrics.run == plan.name:
            return metrics
        problem = "not the metrics of this run"
    print(f"[run_all] {path} is damaged ({problem}); the run is treated as incomplete and "
          f"finished again from its checkpoints", flush=True)
    return None


def is_complete(plan) -> bool:
    """A run (or stage) is complete when its metrics.json (written last) is intact."""
    return read_metrics(plan) is not None


def rows_trained_on(stage_dir) -> list[str]:
    """The complete runs beside a first stage's folder whose config.json names it as an
    input (their records describe a model built on that stage's weights)."""
    stage_dir = os.path.normpath(stage_dir)
    parent, name = os.path.split(stage_dir)
    users = []
    for run in sorted(os.listdir(parent)):
        folder = os.path.join(parent, run)
        config = RunConfig.path(folder)
        if run == name or not os.path.isfile(os.path.join(folder, METRICS_FILE)) \
                or not os.path.isfile(config):
            continue
        try:
            inputs = artifacts.read_json(config).get("inputs") or {}
        except (OSError, ValueError, AttributeError):
            continue
        # resolved as experiments.runs does: relative to the run's own folder
        if any(os.path.normpath(os.path.join(folder, str(rel))) == stage_dir
               for rel in inputs.values()):
            users.append(run)
    return users


def recorded_identity(plan):
    """The identity in the run folder's config.json, None when there is no config.json;
    RunError naming the file and the fix when it cannot be read."""
    path = RunConfig.path(plan.run_dir)
    if not os.path.exists(path):
        return None
    try:
        record = RunConfig.read(plan.run_dir)
    except NotARecord:
        record = None
    except (OSError, ValueError) as err:
        raise RunError(f"{path} is damaged ({type(err).__name__}: {err}); it says which run "
                       f"the folder holds, so delete the folder {plan.run_dir} to start that "
                       f"run afresh") from err
    if record is None or not isinstance(record.identity, dict):
        raise RunError(f"{path} is damaged (no identity recorded); delete the folder "
                       f"{plan.run_dir} to start that run afresh")
    return _with_new_fields(record.identity, plan)


def _with_new_fields(identity: dict, plan) -> dict:
    """``identity`` with the family config fields added after it was recorded filled in
    at their defaults: a new field's default is the behaviour from before it existed
    (e.g. the GAN's truncation_psi = 1), so older runs still match."""
    saved = identity.get("family_config")
    if not isinstance(plan, RunPlan) or not isinstance(saved, dict):
        return identity
    added = {}
    for field in dataclasses.fields(plan.family_config):
        if field.name not in saved:
            default = (field.default_factory() if field.default is dataclasses.MISSING
                       else field.default)
            added[field.name] = default
    if not added:
        return identity
    return {**identity, "family_config": {**saved, **to_jsonable(added)}}


def _differing_leaves(saved, wanted, path=()) -> list:
    """(path, recorded, requested) for every leaf where two identities differ."""
    if isinstance(saved, dict) and isinstance(wanted, dict):
        out = []
        for key in sorted(set(saved) | set(wanted)):
            out += _differing_leaves(saved.get(key), wanted.get(key), (*path, key))
        return out
    return [] if saved == wanted else [(path, saved, wanted)]


def identity_differences(saved, wanted) -> list:
    """'key: recorded X, requested Y' for every leaf where two identities differ."""
    return [f"{'.'.join(path)}: recorded {a!r}, requested {b!r}"
            for path, a, b in _differing_leaves(saved, wanted)]


def sampler_changes(plan, saved=None) -> dict:
    """{field: (recorded, requested)} when the run folder holds ``plan``'s run except for
    sampler fields (``Family.sampler_fields``: they change no trained weight), else {}.
    ``saved``: the recorded identity, when the caller has read it already."""
    if not isinstance(plan, RunPlan):
        return {}
    saved = recorded_identity(plan) if saved is None else saved
    if saved is None:
        return {}
    leaves = _differing_leaves(saved, plan.identity())
    fields = plan.family.sampler_fields
    if not leaves or any(len(path) != 2 or path[0] != "family_config" or path[1] not in fields
                         for path, _, _ in leaves):
        return {}
    return {path[1]: (a, b) for path, a, b in leaves}


def check_reusable(plan):
    """Refuse a run (or shared stage) folder that holds a different run than ``plan``.

    Its identity (dataset, profile, configs, seed, image size, earlier stages) must
    match, whether it is finished (reused) or not (resumed); otherwise Fashion-MNIST
    numbers would be reported as synthetic, or quick ones as paper ones. Sampler
    fields alone may differ: a finished run is then sampled and scored again
    (``resample_run``), an unfinished one resumes (its weights do not depend on them).
    """
    saved = recorded_identity(plan)
    if saved is None or saved == plan.identity() or sampler_changes(plan, saved):
        return
    # top-level fields (dataset, profile, image size, seed) first: they say the most
    differences = sorted(identity_differences(saved, plan.identity()),
                         key=lambda text: text.split(":")[0].count("."))
    shown = "; ".join(differences[:3]) + (" ..." if len(differences) > 3 else "")
    raise RunError(f"{plan.run_dir} holds a different run ({shown}); choose another --out "
                   f"(the default is reports/<profile>/<dataset>) or delete that folder")


def _saved_identity(run_dir):
    path = RunConfig.path(run_dir)
    if not os.path.exists(path):
        return None
    try:
        saved = RunConfig.read(run_dir)
    except NotARecord:
        return None
    except ValueError as err:
        raise ConfigError(f"{path} is not valid JSON ({err}); delete that folder to retrain "
                          f"it") from err
    return saved.identity


def _check_resumable(plan):
    check_reusable(plan)


def _versions() -> dict:
    return {"suite": __version__, "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__}


def _runtime_record(runtime: Runtime) -> dict:
    """config.json's ``runtime``: how the steps ran (the precision is also in the identity)."""
    return {"precision": runtime.precision, "jit": runtime.jit,
            "accumulate": runtime.accumulate}


def generate_uint8(model, n: int, seed: int, batch_size: int = 256) -> np.ndarray:
    """n generated images as uint8 [n, H, W, C] (what samples.npz holds and the metrics score)."""
    out = np.empty((n, *model.image_shape), np.uint8)
    done = 0
    for images in model.sample(n, seed, batch_size):
        b = int(images.shape[0])
        out[done:done + b] = artifacts.to_uint8(images)
        done += b
    return out


def _record(plan, stage, batch, train_source, val_source, strategy, **row) -> RunConfig:
    """config.json: the identity plus what ``experiments.runs.load_run`` needs; ``row``:
    a table row's run's model, table and thesis_row."""
    return RunConfig(identity=plan.identity(), stage=stage, family=plan.family.name,
                     family_config=to_jsonable(plan.family_config), batch_size=batch,
                     image_shape=list(train_source.image_shape), seed=plan.seed,
                     inputs={name: os.path.relpath(p.run_dir, plan.run_dir)
                             for name, p in plan.inputs.items()},
                     strategy=strategy_name(strategy),
                     num_replicas=strategy.num_replicas_in_sync,
                     train_data=getattr(train_source, "provenance", train_source.name),
                     train_examples=train_source.num_examples,
                     val_data=getattr(val_source, "provenance", None) if val_source else None,
                     val_examples=val_source.num_examples if val_source else 0,
                     versions=_versions(), runtime=_runtime_record(plan.runtime), **row)


def _build_with_inputs(stage, plan, batch, image_shape):
    """The stage's model, given its earlier stages restored from their run folders (frozen)."""
    def build():
        inputs = {name: load_run(p.run_dir).model for name, p in plan.inputs.items()}
        return stage.build(plan.family_config, image_shape, batch, seed=plan.seed,
                           inputs=inputs)
    return build


def execute_stage(plan: StagePlan, *, train_source, val_source, strategy, verbose=True,
                  score=None, n_samples: int = 0) -> StageMetrics | dict:
    """Train (or resume, or reuse) a shared first stage; returns its metrics.json record
    ({} on workers other than the chief).

    With ``score`` (the runs' metric function), the reconstructions of ``n_samples``
    held-out images are scored like generated samples: the floor that the second
    stage's samples cannot beat, in ``reconstruction_metrics``.
    """
    if is_complete(plan):
        _check_resumable(plan)  # a finished stage is reused only if it is the one asked for
        return StageMetrics.read(plan.run_dir)
    family = plan.family
    chief = is_chief(strategy)
    _check_resumable(plan)
    if chief:
        _record(plan, plan.stage, plan.batch_size, train_source, val_source,
                strategy).write(plan.run_dir)
        print(f"[run_all] stage {plan.stage} of {family.name} -> {plan.run_dir}", flush=True)
    started = time.time()
    trainer = Trainer(_build_with_inputs(plan.spec, plan, plan.batch_size,
                                         train_source.image_shape),
                      train_source, val_source, plan.train_config,
                      global_batch_size=plan.batch_size, run_dir=plan.run_dir,
                      strategy=strategy, verbose=verbose, max_steps=plan.max_steps,
                      runtime=plan.runtime,
                      title=f"{family.model_name} {plan.stage}, batch {plan.batch_size}, "
                            f"latent {plan.family_config.latent_size}, seed {plan.seed}")
    result = trainer.fit()
    if not chief:
        return {}
    model = result.model
    real = _real_batch(val_source, train_source)
    reconstructed = np.asarray(model.reconstruct(real))
    report_figures.write_samples_figure(os.path.join(plan.run_dir, "samples.png"),
                                   reconstructed, real, columns=8,
                                   title=f"{family.model_name} {plan.stage}: held-out "
                                         f"{plan.dataset} images and their reconstructions",
                                   label="reconstructed")
    last = result.history[-1] if result.history else {}
    metrics = StageMetrics(
        run=plan.name, family=family.name, stage=plan.stage, seed=plan.seed,
        batch_size=plan.batch_size, latent_size=plan.family_config.latent_size,
        epochs=plan.train_config.epochs, steps=result.steps,
        train_loss=_float(last.get(model.TRAIN_LOSS_KEY)),
        val_loss=_float(last.get(model.VAL_LOSS_KEY)),
        train_loss_key=model.TRAIN_LOSS_KEY, val_loss_key=model.VAL_LOSS_KEY,
    ).updated({**model.evaluate_stage(val_source or train_source),  # the family's own figures
               "train_seconds": round(time.time() - started, 1),
               "resumed_from_step": result.resumed_from_step})
    if score is not None and n_samples:
        source = val_source or train_source
        recon = np.concatenate([artifacts.to_uint8(model.reconstruct(images))
                                for images, _ in source.batches(250)])[:n_samples]
        metrics = dataclasses.replace(metrics, reconstruction_metrics={
            "images": f"{len(recon)} reconstructed {source.split} images",
            **score(uint8_batches(recon), len(recon), plan.seed)})
    metrics.write(plan.run_dir)
    return metrics


def _real_batch(val_source, train_source, n=64):
    source = val_source if val_source is not None else train_source
    return np.asarray(next(iter(source.batches(n)))[0])


def execute_run(plan: RunPlan, *, train_source, val_source, strategy, score=None,
                verbose=True, extra_callbacks=()) -> RunMetrics | dict:
    """Train (or resume) one run, after the earlier stages it needs, and write its
    reports; returns its metrics.json record ({} on workers other than the chief).
    ``extra_callbacks`` go to the final stage's trainer (tests use them to kill a run
    at a given step).

    score: ``score(fake_batches, n_samples, seed) -> dict`` of metric values, or None.
    """
    family = plan.family
    chief = is_chief(strategy)
    _check_resumable(plan)
    stage_metrics = {}
    for stage_plan in plan.stages:
        stage_metrics[stage_plan.stage] = execute_stage(
            stage_plan, train_source=train_source, val_source=val_source, strategy=strategy,
            verbose=verbose, score=score, n_samples=plan.n_samples)
    batch = plan.family_config.batch_size
    if chief:
        _record(plan, family.final_stage.name, batch, train_source, val_source, strategy,
                model=plan.row.model, table=plan.row.table,
                thesis_row={"batch_size": plan.row.batch_size,
                            "latent_size": plan.row.latent_size, **plan.row.thesis},
                ).write(plan.run_dir)
    started = time.time()
    trainer = Trainer(_build_with_inputs(family.final_stage, plan, batch,
                                         train_source.image_shape),
                      train_source, val_source, plan.train_config,
                      global_batch_size=batch, run_dir=plan.run_dir, strategy=strategy,
                      title=f"{plan.row.model} ({plan.row.loss}), batch {batch}, "
                            f"latent {plan.row.latent_size}, seed {plan.seed}",
                      verbose=verbose, extra_callbacks=extra_callbacks,
                      batches_per_step=batches_per_step(plan.family_config),
                      max_steps=plan.max_steps, runtime=plan.runtime)
    result = trainer.fit()
    if not chief:
        return {}
    model = result.model
    n = plan.n_samples
    fake, sample_seconds = _write_samples(plan, model, val_source, train_source)
    last = result.history[-1] if result.history else {}
    metrics = RunMetrics(
        run=plan.name, table=plan.row.table, family=plan.row.family, model=plan.row.model,
        loss=plan.row.loss, seed=plan.seed, batch_size=batch,
        latent_size=plan.row.latent_size, epochs=plan.train_config.epochs,
        steps=result.steps, train_loss=_float(last.get(model.TRAIN_LOSS_KEY)),
        val_loss=_float(last.get(model.VAL_LOSS_KEY)),
        train_loss_key=model.TRAIN_LOSS_KEY, val_loss_key=model.VAL_LOSS_KEY, n_samples=n,
        train_seconds=round(time.time() - started - sample_seconds, 1),
        sample_seconds=round(sample_seconds, 1),
        resumed_from_step=result.resumed_from_step,
    ).updated({**UNSCORED, **_sampler_record(plan)})
    if plan.stages:
        metrics = dataclasses.replace(metrics, stages={
            name: {"run": os.path.relpath(p.run_dir, plan.run_dir),
                   "train_seconds": stage_metrics[name].get("train_seconds"),
                   "reconstruction_fid": (stage_metrics[name].get("reconstruction_metrics")
                                          or {}).get("fid")}
            for name, p in plan.inputs.items()})
    if score is not None:
        metrics = metrics.updated(score(uint8_batches(fake), n, plan.seed))
    metrics.write(plan.run_dir)
    return metrics


def _write_samples(plan, model, val_source, train_source):
    """The run's samples: ``n_samples`` images of seed + 777 into samples.npz and a grid
    beside real images into samples.png; returns (uint8 images, seconds of sampling)."""
    sampled = time.time()
    fake = generate_uint8(model, plan.n_samples, seed=plan.seed + 777)
    sample_seconds = time.time() - sampled
    artifacts.write_npz(os.path.join(plan.run_dir, "samples.npz"), images=fake)
    real = _real_batch(val_source, train_source)
    grid = min(64, plan.n_samples)
    report_figures.write_samples_figure(os.path.join(plan.run_dir, "samples.png"),
                                   fake[:grid].astype(np.float32) / 127.5 - 1.0,
                                   real[:grid], columns=8,
                                   title=f"{plan.row.model} ({plan.row.loss}) vs "
                                         f"{plan.dataset}")
    return fake, sample_seconds


def _sampler_record(plan) -> dict:
    """metrics.json's ``sampler``: the sampler settings its samples were drawn with."""
    fields = plan.family.sampler_fields
    if not fields:
        return {}
    return {"sampler": to_jsonable({f: getattr(plan.family_config, f) for f in fields})}


def resample_run(plan: RunPlan, *, train_source, val_source, strategy, score=None) -> dict:
    """Sample and score a finished run again with ``plan``'s sampler settings (the only
    difference ``sampler_changes`` allows); its weights, history and training figures
    are kept. Written in an order that a kill cannot mislabel: samples first, then
    metrics.json (naming the settings in ``sampler``), then config.json's identity; a
    kill before the last write leaves the old identity, so a rerun samples again."""
    changes = sampler_changes(plan)
    if not is_chief(strategy):
        return {}
    model = load_run(plan.run_dir).model
    model.config = dataclasses.replace(model.config, **{f: new for f, (_, new) in
                                                        changes.items()})
    model.configure_sampler()
    fake, sample_seconds = _write_samples(plan, model, val_source, train_source)
    metrics = RunMetrics.read(plan.run_dir).updated({
        "sample_seconds": round(sample_seconds, 1), **_sampler_record(plan),
        "resampled_from": to_jsonable({f: old for f, (old, _) in changes.items()})})
    # the old scores measured the old samples: replaced, or cleared without a scorer
    metrics = metrics.updated(score(uint8_batches(fake), plan.n_samples, plan.seed)
                              if score is not None else UNSCORED)
    metrics.write(plan.run_dir)
    RunConfig.read(plan.run_dir).updated({
        "identity": plan.identity(), "family_config": to_jsonable(plan.family_config),
    }).write(plan.run_dir)
    return metrics


def _float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
