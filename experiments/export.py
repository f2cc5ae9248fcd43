"""Ship a finished run's weights: ``python -m experiments.export RUN_DIR [RUN_DIR ...]``.

Writes ``RUN_DIR/weights/`` (training.checkpoints.WEIGHTS_PREFIX): the variables its
sampler needs (the model's ``shipped_parts``: the whole model, or where a family samples
from an EMA copy alone, that copy), the frozen earlier stages included (they are part of
the row's model), without optimiser slots. ``load_run`` reads it when the run has no
``checkpoints/`` (a fresh clone), so ``python -m experiments.sample RUN_DIR`` works there and draws the images that
scored the committed numbers. Each export is read back into a fresh model and compared
variable by variable before the command reports it.
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported


def _shipped_variables(model) -> list:
    """Every variable of the model's shipped parts, in a fixed order."""
    found = []
    for _, part in sorted(model.shipped_parts().items()):
        found.extend(part.variables if hasattr(part, "variables") else [part])
    return found


def export(run_dir: str) -> tuple[str, int]:
    """Write ``run_dir``'s weights-only checkpoint; returns (its folder, its size in bytes)."""
    import numpy as np

    from experiments.runs import load_run
    from training.checkpoints import write_weights

    loaded = load_run(run_dir)
    prefix = write_weights(loaded.model, loaded.run_dir)
    folder = os.path.dirname(prefix)
    # Read it back as a fresh clone would (no checkpoints/ in the way) and compare.
    again = load_run(run_dir, weights_only=True)
    for a, b in zip(_shipped_variables(loaded.model), _shipped_variables(again.model),
                    strict=True):
        if not np.array_equal(np.asarray(a), np.asarray(b)):
            raise RuntimeError(f"{folder}: {a.path} does not read back equal")
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    return folder, size


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="finished run folders")
    args = parser.parse_args(argv)
    from experiments.runs import RunLoadError

    total = 0
    for run_dir in args.runs:
        try:
            folder, size = export(run_dir)
        except RunLoadError as err:
            print(f"experiments.export: error: {err}", file=sys.stderr)
            return 2
        total += size
        print(f"{folder}: {size / 2**20:.2f} MiB")
    print(f"{len(args.runs)} run(s), {total / 2**20:.2f} MiB in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
