"""What the two-stage family drivers share: tiny synthetic data, a smoke-profile plan
of one table row, a run through the runner, and one training step of a model."""
import tensorflow as tf

SIZE = 32


def sources():
    """(train, held-out) synthetic ImageSources of SIZE x SIZE images, 10 classes."""
    from data import open_dataset
    return (open_dataset("synthetic", "train", image_size=SIZE, limit=64),
            open_dataset("synthetic", "test", image_size=SIZE, limit=16))


def smoke_plan(family, model, out_dir, loss, latent, **overrides):
    """The smoke-profile plan of <family>/<loss>@<latent> on synthetic data (batch 8)."""
    from experiments.profiles import get_profile
    from experiments.runner import plan_run
    from experiments.tables import Row

    row = Row(table="table_3_1", family=family, model=model, loss=loss, batch_size=8,
              latent_size=latent)
    return plan_run(row, 0, get_profile("smoke"), dataset="synthetic", image_size=SIZE,
                    out_dir=out_dir, num_classes=10, overrides=overrides or None)


def run(plan, strategy=None, callbacks=()):
    """Every stage of ``plan`` through the runner (metrics off); metrics.json's content."""
    from experiments.runner import execute_run
    train, val = sources()
    return execute_run(plan, train_source=train, val_source=val,
                       strategy=strategy or tf.distribute.get_strategy(), verbose=False,
                       extra_callbacks=callbacks)


def one_step(build, run_dir, strategy):
    """One training step of the model ``build()`` makes, on the first batch, in run_dir."""
    from training.config import TrainConfig
    from training.trainer import Trainer

    train, val = sources()
    trainer = Trainer(build, train, val, TrainConfig(epochs=1, steps_per_epoch=1, val_batches=1,
                                                     checkpoint_every=0, grid_size=2),
                      global_batch_size=8, run_dir=run_dir, strategy=strategy, verbose=False)
    return trainer.fit().model
