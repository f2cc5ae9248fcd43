"""Side effects of training, as Keras callbacks the trainer's loop calls.

The trainer calls ``on_train_begin``, ``on_epoch_begin(epoch)``,
``on_train_batch_end(step, logs)`` (step = global optimisation step, 1-based),
``on_epoch_end(epoch, logs)`` and ``on_train_end``; logs are plain floats.
"""
from __future__ import annotations

import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from common import files as artifacts
from common.figures import pyplot, save_figure


class ProgressBar(keras.callbacks.Callback):
    """A Keras progress bar per epoch on a terminal; plain lines (about ten an epoch)
    in a log file, where a redrawn bar would be noise."""

    SHOWN = ("loss", "g_loss", "d_loss")

    def __init__(self, epochs: int, steps_per_epoch: int, stream=None):
        super().__init__()
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.stream = stream or sys.stdout
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = max(1, steps_per_epoch // 10)
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        print(f"epoch {epoch + 1}/{self.epochs}", file=self.stream, flush=True)
        self.started = time.time()
        if self.interactive:
            self.bar = keras.utils.Progbar(self.steps_per_epoch)

    def on_train_batch_end(self, step, logs=None):
        within = (step - 1) % self.steps_per_epoch + 1
        shown = [(k, v) for k, v in (logs or {}).items() if k in self.SHOWN]
        if self.bar is not None:
            self.bar.update(within, values=shown)
        elif within % self.every == 0 or within == self.steps_per_epoch:
            rate = (time.time() - self.started) / within
            text = "  ".join(f"{k}={v:.5g}" for k, v in shown)
            print(f"  step {within}/{self.steps_per_epoch} ({rate:.2f} s/step)  {text}",
                  file=self.stream, flush=True)

    def on_epoch_end(self, epoch, logs=None):
        shown = {k: v for k, v in (logs or {}).items() if "loss" in k}
        print("  " + "  ".join(f"{k}={v:.5g}" for k, v in shown.items()), file=self.stream,
              flush=True)


class HistoryWriter(keras.callbacks.Callback):
    """history.csv and loss_curves.png, rewritten whole after every epoch.

    ``rows`` are the epochs already done (read back on resume), so a killed run
    never leaves a row the checkpoint does not cover, nor loses one it does.
    """

    def __init__(self, run_dir, rows, loss_pairs, title=""):
        super().__init__()
        self.run_dir, self.rows, self.loss_pairs, self.title = run_dir, list(rows), loss_pairs, title
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **(logs or {}), "wall_s": round(time.time() - self.started, 2)}
        self.rows = [r for r in self.rows if int(r["epoch"]) != epoch + 1] + [row]
        # exact floats: a run resumed after its last epoch reports its losses from here
        artifacts.write_csv(os.path.join(self.run_dir, "history.csv"), self.rows, exact=True)
        write_loss_curves(os.path.join(self.run_dir, "loss_curves.png"), self.rows,
                                  self.loss_pairs, self.title)


class TensorBoardLogger(keras.callbacks.Callback):
    """Scalars for TensorBoard: every ``every`` steps and at each epoch end."""

    def __init__(self, log_dir, steps_per_epoch, every=10):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.steps_per_epoch, self.every = steps_per_epoch, every

    def on_train_batch_end(self, step, logs=None):
        if step % self.every == 0:
            with self.writer.as_default(step=step):
                for key, value in (logs or {}).items():
                    tf.summary.scalar(f"step/{key}", value)

    def on_epoch_end(self, epoch, logs=None):
        with self.writer.as_default(step=(epoch + 1) * self.steps_per_epoch):
            for key, value in (logs or {}).items():
                tf.summary.scalar(f"epoch/{key}", value)
        self.writer.flush()


class SampleGrid(keras.callbacks.Callback):
    """A grid every ``every`` epochs: samples/epoch_XXX.png. ``render()`` returns the
    images [n, H, W, C] in [-1, 1]: samples from fixed latents, or a first stage's
    reconstructions of fixed real images."""

    def __init__(self, run_dir, render, every=1, columns=8):
        super().__init__()
        self.folder = os.path.join(run_dir, "samples")
        self.render, self.every, self.columns = render, every, columns

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        images = np.asarray(self.render())
        grid = artifacts.image_grid(artifacts.to_uint8(images), self.columns)
        artifacts.write_png(os.path.join(self.folder, f"epoch_{epoch + 1:03d}.png"), grid, scale=2)


class Checkpointer(keras.callbacks.Callback):
    """Saves the training state every ``every`` steps and after each epoch's reports.

    ``save`` is the trainer's function that records the state (weights,
    optimisers, step counter, epoch progress) atomically; this callback only
    decides when. It must be the last callback so that an epoch counts as done
    only once its history row and grid are on disk.
    """

    def __init__(self, save, every):
        super().__init__()
        self.save, self.every = save, every

    def on_train_batch_end(self, step, logs=None):
        if self.every and step % self.every == 0:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        self.save(epochs_done=epoch + 1)


def write_loss_curves(path, history: list[dict], pairs: list[tuple[str, str]], title: str = ""):
    """One panel per (train key, validation key) pair, against the epoch."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 3.6), squeeze=False)
    epochs = [int(row["epoch"]) for row in history]
    for ax, (train_key, val_key) in zip(axes[0], pairs):
        for key, style in ((train_key, "-o"), (val_key, "--s")):
            values = [_float(row.get(key)) for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, [np.nan if v is None else v for v in values], style,
                        label=key, markersize=3)
        ax.set_xlabel("epoch")
        ax.set_title(f"{train_key} / {val_key}")
        ax.legend()
        ax.grid(alpha=0.3)
    save_figure(plt, fig, path, title)


def _float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
