"""Planning and executing runs: one table row x one seed -> one run folder.

A run folder ``OUT/runs/<family>-<loss>-b<batch>-z<latent>-s<seed>/`` holds
config.json (written first), the trainer's files (checkpoints/, history.csv,
loss_curves.png, samples/, tensorboard/), then samples.png, samples.npz and,
last, metrics.json: a run is complete exactly when metrics.json exists.

Families with several stages (diffusion: autoencoder, then denoiser) train their
earlier stages first, each in its own folder
``OUT/runs/<family>-<stage>-z<latent>-s<seed>/`` shared by every loss row that
agrees on the stage's fields (the six diffusion rows train two autoencoders);
the row's own folder then holds the final stage, built on the restored, frozen
earlier stages (``training.checkpoints.load_run``).
"""
from __future__ import annotations

import dataclasses
import os
import platform
import time

import keras
import numpy as np
import tensorflow as tf

from experiments.profiles import Profile
from experiments.tables import Row
from metrics import RESULT_KEYS, uint8_batches
from models import get_family
from common import files as artifacts
from experiments import figures as report_figures
from common.config import ConfigError, from_dict, to_jsonable
from training.config import TrainConfig
from training.strategy import is_chief, strategy_name
from training.trainer import Trainer


class RunError(RuntimeError):
    pass


#: The metric values in metrics.json (None until scored).
SCORE_KEYS = RESULT_KEYS[3:]


@dataclasses.dataclass
class StagePlan:
    """A first stage of a family (e.g. the diffusion autoencoder), shared by the rows
    that agree on its fields; ``identity`` is what must match to reuse or resume it."""
    family: str
    stage: str
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

    @property
    def name(self) -> str:
        return os.path.basename(self.run_dir)

    def identity(self) -> dict:
        stage = _stage(self.family, self.stage)
        return to_jsonable({"family": self.family, "stage": self.stage,
                            "fields": {f: getattr(self.family_config, f)
                                       for f in stage.shared_fields},
                            "batch_size": self.batch_size, "train_config": self.train_config,
                            "profile": self.profile, "dataset": self.dataset,
                            "image_size": self.image_size, "channels": self.channels,
                            "seed": self.seed,
                            "inputs": {k: v.identity() for k, v in self.inputs.items()}})


@dataclasses.dataclass
class RunPlan:
    """Everything that defines one run; ``identity`` is what must match to resume it.

    stages: the family's earlier stages this run needs, in order (empty for
    one-stage families); they run first and are shared with other rows.
    """
    row: Row
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
        return to_jsonable(identity)


def batches_per_step(family_config) -> int:
    """Data batches one train step of the final stage consumes (the family config's
    ``batches_per_step()``, e.g. a WGAN's critic steps; 1 when it has none)."""
    method = getattr(family_config, "batches_per_step", None)
    return int(method()) if callable(method) else 1


def _stage(family_name, stage_name):
    return next(s for s in get_family(family_name).stages if s.name == stage_name)


def run_name(family, loss, batch_size, latent_size, seed) -> str:
    return f"{family}-{loss}-b{batch_size}-z{latent_size}-s{seed}"


def stage_name(family, stage, latent_size, seed) -> str:
    return f"{family}-{stage}-z{latent_size}-s{seed}"


def _train_config(family, profile: Profile, stage, seed) -> TrainConfig:
    values = {**profile.train_config(seed), **family.stage_train_overrides(profile.name, stage)}
    return from_dict(TrainConfig, values, where=f"{family.name} preset {profile.name!r}")


def plan_run(row: Row, seed: int, profile: Profile, *, dataset: str, image_size: int,
             out_dir: str, overrides: dict | None = None,
             num_classes: int | None = None, channels: int = 3) -> RunPlan:
    """The run of ``row`` at ``seed`` under ``profile``; config errors surface here, up front.

    num_classes: the dataset's number of classes, given to families whose config
    has a ``num_classes`` field (class-conditional models).
    channels: of the images the run trains on and is scored in (part of its identity).
    """
    family = get_family(row.family)
    if row.loss not in family.losses:
        raise ConfigError(f"unknown loss {row.loss!r} for family {row.family!r}; "
                          f"known: {', '.join(sorted(family.losses))}")
    batch = profile.batch_size(row.batch_size)
    cap = family.max_batch_size(profile.name)
    batch = batch if cap is None else min(batch, cap)
    values = {**family.preset(profile.name), **(overrides or {}),
              "loss": row.loss, "batch_size": batch, "latent_size": row.latent_size}
    if num_classes is not None and "num_classes" in {
            f.name for f in dataclasses.fields(family.config_cls)}:
        values["num_classes"] = int(num_classes)
    config = from_dict(family.config_cls, values, where=f"{row.family} run")
    if hasattr(config, "validate"):  # the family's own checks of its options
        try:
            config.validate()
        except ValueError as err:
            raise ConfigError(f"{row.key}: {err}") from err
    stages = []
    for stage in family.stages_for(config)[:-1]:
        stages.append(StagePlan(
            family=row.family, stage=stage.name, family_config=config,
            train_config=_train_config(family, profile, stage, seed),
            batch_size=int(getattr(config, stage.batch_field)), profile=profile.name,
            dataset=dataset, image_size=image_size, seed=seed,
            run_dir=os.path.join(out_dir, "runs",
                                 stage_name(row.family, stage.name, row.latent_size, seed)),
            inputs={s.stage: s for s in stages}, channels=int(channels)))
    train = _train_config(family, profile, family.final_stage, seed)
    name = run_name(row.family, row.loss, batch, row.latent_size, seed)
    return RunPlan(row=row, seed=seed, family_config=config, train_config=train,
                   profile=profile.name, dataset=dataset, image_size=image_size,
                   n_samples=profile.n_samples, run_dir=os.path.join(out_dir, "runs", name),
                   stages=stages, channels=int(channels))


def check_builds(plan: RunPlan, image_shape):
    """Build the run's models (every stage) once, up front, so a shape or config problem
    is reported before hours of other runs rather than after."""
    family = get_family(plan.row.family)
    try:
        family.build(plan.family_config, image_shape, plan.family_config.batch_size,
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
                differs = sorted(k for k in set(saved) | set(identity)
                                 if saved.get(k) != identity.get(k))
                raise ConfigError(f"{stage.run_dir} holds a {stage.stage} stage trained with "
                                  f"another {', '.join(differs)}; delete it or choose another "
                                  f"--out")
            if seen.setdefault(stage.run_dir, identity) != identity:
                raise ConfigError(f"two rows need different {stage.stage} stages in the same "
                                  f"folder {stage.run_dir}; give them the same "
                                  f"{', '.join(_stage(stage.family, stage.stage).shared_fields)}")


def read_metrics(plan):
    """The run's (or stage's) metrics.json as a dict, or None when it is missing or damaged.

    A damaged file (not JSON, not an object, another run's) marks the run incomplete, so
    rerunning finishes it again from its checkpoints instead of one bad file stopping the
    suite; a line says so.
    """
    path = os.path.join(plan.run_dir, "metrics.json")
    if not os.path.exists(path):
        return None
    try:
        metrics = artifacts.read_json(path)
    except (OSError, ValueError) as err:
        problem = f"not readable JSON ({type(err).__name__})"
    else:
        if isinstance(metrics, dict) and metrics.get("run") == plan.name:
            return metrics
        problem = "not the metrics of this run"
    print(f"[run_all] {path} is damaged ({problem}); the run is treated as incomplete and "
          f"finished again from its checkpoints", flush=True)
    return None


def is_complete(plan) -> bool:
    """A run (or stage) is complete when its metrics.json (written last) is intact."""
    return read_metrics(plan) is not None


def recorded_identity(plan):
    """The identity in the run folder's config.json, None when there is no config.json;
    RunError naming the file and the fix when it cannot be read."""
    path = os.path.join(plan.run_dir, "config.json")
    if not os.path.exists(path):
        return None
    try:
        record = artifacts.read_json(path)
    except (OSError, ValueError) as err:
        raise RunError(f"{path} is damaged ({type(err).__name__}: {err}); it says which run "
                       f"the folder holds, so delete the folder {plan.run_dir} to start that "
                       f"run afresh") from err
    if not isinstance(record, dict) or not isinstance(record.get("identity"), dict):
        raise RunError(f"{path} is damaged (no identity recorded); delete the folder "
                       f"{plan.run_dir} to start that run afresh")
    return _with_new_fields(record["identity"], plan)


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
    fields = get_family(plan.row.family).sampler_fields
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
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        return None
    try:
        saved = artifacts.read_json(path)
    except ValueError as err:
        raise ConfigError(f"{path} is not valid JSON ({err}); delete that folder to retrain "
                          f"it") from err
    return saved.get("identity") if isinstance(saved, dict) else None


def _check_resumable(plan):
    check_reusable(plan)


def _versions() -> dict:
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__}


def generate_uint8(model, n: int, seed: int, batch_size: int = 256) -> np.ndarray:
    """n generated images as uint8 [n, H, W, C] (what samples.npz holds and the metrics score)."""
    out = np.empty((n, *model.image_shape), np.uint8)
    done = 0
    for images in model.sample(n, seed, batch_size):
        b = int(images.shape[0])
        out[done:done + b] = artifacts.to_uint8(images)
        done += b
    return out


def _record(plan, stage, batch, train_source, val_source, strategy) -> dict:
    """config.json: the identity plus what ``training.checkpoints.load_run`` needs."""
    return {"identity": plan.identity(), "stage": stage, "family": plan.identity()["family"],
            "family_config": to_jsonable(plan.family_config), "batch_size": batch,
            "image_shape": list(train_source.image_shape), "seed": plan.seed,
            "inputs": {name: os.path.relpath(p.run_dir, plan.run_dir)
                       for name, p in plan.inputs.items()},
            "strategy": strategy_name(strategy), "num_replicas": strategy.num_replicas_in_sync,
            "train_data": getattr(train_source, "provenance", train_source.name),
            "train_examples": train_source.num_examples,
            "val_data": getattr(val_source, "provenance", None) if val_source else None,
            "val_examples": val_source.num_examples if val_source else 0,
            "versions": _versions()}


def _build_with_inputs(stage, plan, batch, image_shape):
    """The stage's model, given its earlier stages restored from their run folders (frozen)."""
    from training.checkpoints import load_run

    def build():
        inputs = {name: load_run(p.run_dir).model for name, p in plan.inputs.items()}
        return stage.build(plan.family_config, image_shape, batch, seed=plan.seed,
                           inputs=inputs)
    return build


def execute_stage(plan: StagePlan, *, train_source, val_source, strategy, verbose=True,
                  score=None, n_samples: int = 0) -> dict:
    """Train (or resume, or reuse) a shared first stage; returns its metrics.json content.

    With ``score`` (the runs' metric function), the reconstructions of ``n_samples``
    held-out images are scored like generated samples: the floor that the second
    stage's samples cannot beat, in ``reconstruction_metrics``.
    """
    if is_complete(plan):
        _check_resumable(plan)  # a finished stage is reused only if it is the one asked for
        return artifacts.read_json(os.path.join(plan.run_dir, "metrics.json"))
    family = get_family(plan.family)
    stage = _stage(plan.family, plan.stage)
    chief = is_chief(strategy)
    _check_resumable(plan)
    if chief:
        artifacts.write_json(os.path.join(plan.run_dir, "config.json"),
                             _record(plan, plan.stage, plan.batch_size, train_source,
                                     val_source, strategy))
        print(f"[run_all] stage {plan.stage} of {plan.family} -> {plan.run_dir}", flush=True)
    started = time.time()
    trainer = Trainer(_build_with_inputs(stage, plan, plan.batch_size,
                                         train_source.image_shape),
                      train_source, val_source, plan.train_config,
                      global_batch_size=plan.batch_size, run_dir=plan.run_dir,
                      strategy=strategy, verbose=verbose,
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
    metrics = {"run": plan.name, "family": plan.family, "stage": plan.stage,
               "seed": plan.seed, "batch_size": plan.batch_size,
               "latent_size": plan.family_config.latent_size,
               "epochs": plan.train_config.epochs, "steps": result.steps,
               "train_loss": _float(last.get(model.TRAIN_LOSS_KEY)),
               "val_loss": _float(last.get(model.VAL_LOSS_KEY)),
               "train_loss_key": model.TRAIN_LOSS_KEY, "val_loss_key": model.VAL_LOSS_KEY,
               **model.evaluate_stage(val_source or train_source),
               "train_seconds": round(time.time() - started, 1),
               "resumed_from_step": result.resumed_from_step}
    if score is not None and n_samples:
        source = val_source or train_source
        recon = np.concatenate([artifacts.to_uint8(model.reconstruct(images))
                                for images, _ in source.batches(250)])[:n_samples]
        metrics["reconstruction_metrics"] = {
            "images": f"{len(recon)} reconstructed {source.split} images",
            **score(uint8_batches(recon), len(recon), plan.seed)}
    artifacts.write_json(os.path.join(plan.run_dir, "metrics.json"), metrics)
    return metrics


def _real_batch(val_source, train_source, n=64):
    source = val_source if val_source is not None else train_source
    return np.asarray(next(iter(source.batches(n)))[0])


def execute_run(plan: RunPlan, *, train_source, val_source, strategy, score=None,
                verbose=True, extra_callbacks=()) -> dict:
    """Train (or resume) one run, after the earlier stages it needs, and write its
    reports; returns metrics.json's content. ``extra_callbacks`` go to the final
    stage's trainer (tests use them to kill a run at a given step).

    score: ``score(fake_batches, n_samples, seed) -> dict`` of metric values, or None.
    """
    family = get_family(plan.row.family)
    chief = is_chief(strategy)
    _check_resumable(plan)
    stage_metrics = {}
    for stage_plan in plan.stages:
        stage_metrics[stage_plan.stage] = execute_stage(
            stage_plan, train_source=train_source, val_source=val_source, strategy=strategy,
            verbose=verbose, score=score, n_samples=plan.n_samples)
    batch = plan.family_config.batch_size
    if chief:
        record = _record(plan, family.final_stage.name, batch, train_source, val_source,
                         strategy)
        record.update({"model": plan.row.model, "table": plan.row.table,
                       "thesis_row": {"batch_size": plan.row.batch_size,
                                      "latent_size": plan.row.latent_size, **plan.row.thesis}})
        artifacts.write_json(os.path.join(plan.run_dir, "config.json"), record)
    started = time.time()
    trainer = Trainer(_build_with_inputs(family.final_stage, plan, batch,
                                         train_source.image_shape),
                      train_source, val_source, plan.train_config,
                      global_batch_size=batch, run_dir=plan.run_dir, strategy=strategy,
                      title=f"{plan.row.model} ({plan.row.loss}), batch {batch}, "
                            f"latent {plan.row.latent_size}, seed {plan.seed}",
                      verbose=verbose, extra_callbacks=extra_callbacks,
                      batches_per_step=batches_per_step(plan.family_config))
    result = trainer.fit()
    if not chief:
        return {}
    model = result.model
    n = plan.n_samples
    fake, sample_seconds = _write_samples(plan, model, val_source, train_source)
    last = result.history[-1] if result.history else {}
    metrics = {
        "run": plan.name, "table": plan.row.table, "family": plan.row.family,
        "model": plan.row.model, "loss": plan.row.loss, "seed": plan.seed,
        "batch_size": batch, "latent_size": plan.row.latent_size,
        "epochs": plan.train_config.epochs, "steps": result.steps,
        "train_loss": _float(last.get(model.TRAIN_LOSS_KEY)),
        "val_loss": _float(last.get(model.VAL_LOSS_KEY)),
        "train_loss_key": model.TRAIN_LOSS_KEY, "val_loss_key": model.VAL_LOSS_KEY,
        "n_samples": n, "metric_network": "not computed",
        "metric_network_sha256": None, **{k: None for k in SCORE_KEYS},
        "train_seconds": round(time.time() - started - sample_seconds, 1),
        "sample_seconds": round(sample_seconds, 1),
        "resumed_from_step": result.resumed_from_step,
        **_sampler_record(plan),
    }
    if plan.stages:
        metrics["stages"] = {
            name: {"run": os.path.relpath(p.run_dir, plan.run_dir),
                   "train_seconds": stage_metrics[name].get("train_seconds"),
                   "reconstruction_fid": (stage_metrics[name].get("reconstruction_metrics")
                                          or {}).get("fid")}
            for name, p in plan.inputs.items()}
    if score is not None:
        metrics.update(score(uint8_batches(fake), n, plan.seed))
    artifacts.write_json(os.path.join(plan.run_dir, "metrics.json"), metrics)
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
    fields = get_family(plan.row.family).sampler_fields
    if not fields:
        return {}
    return {"sampler": to_jsonable({f: getattr(plan.family_config, f) for f in fields})}


def resample_run(plan: RunPlan, *, train_source, val_source, strategy, score=None) -> dict:
    """Sample and score a finished run again with ``plan``'s sampler settings (the only
    difference ``sampler_changes`` allows); its weights, history and training figures
    are kept. Written in an order that a kill cannot mislabel: samples first, then
    metrics.json (naming the settings in ``sampler``), then config.json's identity; a
    kill before the last write leaves the old identity, so a rerun samples again."""
    from training.checkpoints import load_run

    changes = sampler_changes(plan)
    if not is_chief(strategy):
        return {}
    model = load_run(plan.run_dir).model
    model.config = dataclasses.replace(model.config, **{f: new for f, (_, new) in
                                                        changes.items()})
    model.configure_sampler()
    fake, sample_seconds = _write_samples(plan, model, val_source, train_source)
    metrics = artifacts.read_json(os.path.join(plan.run_dir, "metrics.json"))
    metrics.update({"sample_seconds": round(sample_seconds, 1), **_sampler_record(plan),
                    "resampled_from": to_jsonable({f: old for f, (old, _) in
                                                   changes.items()})})
    # the old scores measured the old samples: replaced, or cleared without a scorer
    metrics.update(score(uint8_batches(fake), plan.n_samples, plan.seed) if score is not None
                   else {"metric_network": "not computed", "metric_network_sha256": None,
                         **{k: None for k in SCORE_KEYS}})
    artifacts.write_json(os.path.join(plan.run_dir, "metrics.json"), metrics)
    record = artifacts.read_json(os.path.join(plan.run_dir, "config.json"))
    record.update({"identity": plan.identity(),
                   "family_config": to_jsonable(plan.family_config)})
    artifacts.write_json(os.path.join(plan.run_dir, "config.json"), record)
    return metrics


def _float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
