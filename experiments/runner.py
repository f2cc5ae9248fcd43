"""Planning and executing runs: one table row x one seed -> one run folder.

A run folder ``OUT/runs/<family>-<loss>-b<batch>-z<latent>-s<seed>/`` holds
config.json (written first), the trainer's files (checkpoints/, history.csv,
loss_curves.png, samples/, tensorboard/), then samples.png, samples.npz and,
last, metrics.json: a run is complete exactly when metrics.json exists.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import time

import keras
import numpy as np
import tensorflow as tf

from experiments import reports
from experiments.config import ConfigError, TrainConfig, from_dict, to_jsonable
from experiments.profiles import Profile
from experiments.strategy import is_chief, strategy_name
from experiments.tables import Row
from experiments.trainer import Trainer
from models import get_family


class RunError(RuntimeError):
    pass


@dataclasses.dataclass
class RunPlan:
    """Everything that defines one run; ``identity`` is what must match to resume it."""
    row: Row
    seed: int
    family_config: object
    train_config: TrainConfig
    profile: str
    dataset: str
    image_size: int
    n_samples: int
    run_dir: str

    @property
    def name(self) -> str:
        return os.path.basename(self.run_dir)

    def identity(self) -> dict:
        return to_jsonable({"family": self.row.family, "loss": self.row.loss,
                            "family_config": self.family_config,
                            "train_config": self.train_config, "profile": self.profile,
                            "dataset": self.dataset, "image_size": self.image_size,
                            "seed": self.seed})


def run_name(family, loss, batch_size, latent_size, seed) -> str:
    return f"{family}-{loss}-b{batch_size}-z{latent_size}-s{seed}"


def plan_run(row: Row, seed: int, profile: Profile, *, dataset: str, image_size: int,
             out_dir: str, overrides: dict | None = None) -> RunPlan:
    """The run of ``row`` at ``seed`` under ``profile``; config errors surface here, up front."""
    family = get_family(row.family)
    if row.loss not in family.losses:
        raise ConfigError(f"unknown loss {row.loss!r} for family {row.family!r}; "
                          f"known: {', '.join(sorted(family.losses))}")
    batch = profile.batch_size(row.batch_size)
    values = {**profile.family_overrides.get(row.family, {}), **(overrides or {}),
              "loss": row.loss, "batch_size": batch, "latent_size": row.latent_size}
    config = from_dict(family.config_cls, values, where=f"{row.family} run")
    train = from_dict(TrainConfig, profile.train_config(seed), where="profile")
    name = run_name(row.family, row.loss, batch, row.latent_size, seed)
    return RunPlan(row=row, seed=seed, family_config=config, train_config=train,
                   profile=profile.name, dataset=dataset, image_size=image_size,
                   n_samples=profile.n_samples, run_dir=os.path.join(out_dir, "runs", name))


def check_builds(plan: RunPlan, image_shape):
    """Build the run's model once, up front, so a shape or config problem is reported
    before hours of other runs rather than after."""
    family = get_family(plan.row.family)
    try:
        family.build(plan.family_config, image_shape, plan.family_config.batch_size,
                     seed=plan.seed)
    except ValueError as err:
        raise ConfigError(f"{plan.name}: {err}") from err


def is_complete(plan: RunPlan) -> bool:
    return os.path.exists(os.path.join(plan.run_dir, "metrics.json"))


def _check_resumable(plan: RunPlan):
    path = os.path.join(plan.run_dir, "config.json")
    if not os.path.exists(path):
        return
    saved = reports.read_json(path).get("identity")
    if saved != plan.identity():
        raise RunError(f"{plan.run_dir} holds a run with a different configuration; "
                       f"delete that folder or choose another --out to start afresh")


def _versions() -> dict:
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__}


def generate_uint8(model, n: int, seed: int, batch_size: int = 256) -> np.ndarray:
    """n generated images as uint8 [n, H, W, C] (what samples.npz holds and the metrics score)."""
    out = np.empty((n, *model.image_shape), np.uint8)
    done = 0
    for images in model.sample(n, seed, batch_size):
        b = int(images.shape[0])
        out[done:done + b] = reports.to_uint8(images)
        done += b
    return out


def uint8_batches(images: np.ndarray, batch_size: int = 250):
    """Batches of uint8 images back in [-1, 1], float32: what metric code consumes."""
    for start in range(0, len(images), batch_size):
        yield images[start:start + batch_size].astype(np.float32) / 127.5 - 1.0


def execute_run(plan: RunPlan, *, train_source, val_source, strategy, score=None,
                verbose=True) -> dict:
    """Train (or resume) one run and write its reports; returns metrics.json's content.

    score: ``score(fake_batches, n_samples, seed) -> dict`` of metric values, or None.
    """
    family = get_family(plan.row.family)
    chief = is_chief(strategy)
    _check_resumable(plan)
    if chief:
        reports.write_json(os.path.join(plan.run_dir, "config.json"), {
            "identity": plan.identity(), "model": plan.row.model, "table": plan.row.table,
            "thesis_row": {"batch_size": plan.row.batch_size,
                           "latent_size": plan.row.latent_size, **plan.row.thesis},
            "strategy": strategy_name(strategy), "num_replicas": strategy.num_replicas_in_sync,
            "train_data": getattr(train_source, "provenance", train_source.name),
            "train_examples": train_source.num_examples,
            "val_data": getattr(val_source, "provenance", None) if val_source else None,
            "val_examples": val_source.num_examples if val_source else 0,
            "versions": _versions()})
    started = time.time()
    batch = plan.family_config.batch_size

    def build():
        return family.build(plan.family_config, train_source.image_shape, batch, seed=plan.seed)

    trainer = Trainer(build, train_source, val_source, plan.train_config,
                      global_batch_size=batch, run_dir=plan.run_dir, strategy=strategy,
                      title=f"{plan.row.model} ({plan.row.loss}), batch {batch}, "
                            f"latent {plan.row.latent_size}, seed {plan.seed}",
                      verbose=verbose)
    result = trainer.fit()
    if not chief:
        return {}
    model = result.model
    n = plan.n_samples
    fake = generate_uint8(model, n, seed=plan.seed + 777)
    reports.write_npz(os.path.join(plan.run_dir, "samples.npz"), images=fake)
    real = next(iter(val_source.batches(64) if val_source else train_source.batches(64)))[0]
    grid = min(64, n)
    reports.write_samples_figure(os.path.join(plan.run_dir, "samples.png"),
                                 fake[:grid].astype(np.float32) / 127.5 - 1.0,
                                 np.asarray(real)[:grid], columns=8,
                                 title=f"{plan.row.model} ({plan.row.loss}) vs "
                                       f"{plan.dataset}")
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
        "fid": None, "is": None, "is_std": None, "kid": None, "kid_std": None,
        "precision": None, "recall": None,
        "train_seconds": round(time.time() - started, 1),
        "resumed_from_step": result.resumed_from_step,
    }
    if score is not None:
        metrics.update(score(uint8_batches(fake), n, plan.seed))
    reports.write_json(os.path.join(plan.run_dir, "metrics.json"), metrics)
    return metrics


def _float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
