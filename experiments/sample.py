"""Sample from any finished run (stylegan2-ada's ``generate.py``, for every family).

    python -m experiments.sample RUN_DIR [--n 64] [--seed 0] [--out grid.png|samples.npz]
                                 [--columns 8]

RUN_DIR is a row's folder under ``<out>/runs/`` (a finished run: its metrics.json
exists). The images are a pure function of (run, seed, n): the same command
writes the same file. ``.png`` writes a grid, ``.npz`` the uint8 images
(``images``, [n, H, W, C]) that any metric tool reads. Family-specific sampler
options (e.g. diffusion's ``--sampler ddim --steps 50 --guidance 2``) are
passed as ``--set KEY=VALUE`` and must be fields of the run's config.
"""
from __future__ import annotations

import argparse
import ast
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXIT_BAD_INPUT = 2


def _parse_setting(text):
    if "=" not in text:
        raise ValueError(f"--set {text!r}: write KEY=VALUE, e.g. --set sampler=ddim")
    key, value = text.split("=", 1)
    try:
        return key.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):  # a bare word such as ddim: the string itself
        return key.strip(), value


def sample_run(run_dir: str, n: int = 64, seed: int = 0, settings: dict | None = None):
    """uint8 images [n, H, W, C] from the finished run in ``run_dir`` (deterministic in seed)."""
    from experiments.runner import generate_uint8
    from training.checkpoints import RunLoadError, load_run
    from common.config import ConfigError, apply_overrides

    loaded = load_run(run_dir)
    model = loaded.model
    if getattr(model, "IS_FIRST_STAGE", False):
        raise RunLoadError(f"{run_dir} holds the {loaded.stage} stage of the {loaded.family} "
                           f"family, which does not sample; pass the folder of a table row "
                           f"that uses it")
    if settings:
        try:
            model.config = apply_overrides(model.config, settings, where="--set")
        except ConfigError as err:
            raise RunLoadError(str(err)) from err
        model.configure_sampler()
    return generate_uint8(model, n, seed=seed)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.sample",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--n", type=int, default=64, help="number of images (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None,
                        help="grid.png or samples.npz (default RUN_DIR/sampled_seed<SEED>.png)")
    parser.add_argument("--columns", type=int, default=8, help="grid columns (.png)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a sampler field of the run's config")
    args = parser.parse_args(argv)
    from common import files as artifacts
    from training.checkpoints import RunLoadError

    out = args.out or os.path.join(args.run_dir, f"sampled_seed{args.seed}.png")
    try:
        if args.n < 1:
            raise ValueError("--n must be at least 1")
        if not out.endswith((".png", ".npz")):
            raise ValueError(f"--out {out!r}: end it in .png (a grid) or .npz (the images)")
        folder = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(folder):
            raise ValueError(f"--out {out!r}: the folder {folder} does not exist")
        settings = dict(_parse_setting(text) for text in args.set)
        images = sample_run(args.run_dir, args.n, args.seed, settings)
    except (RunLoadError, ValueError) as err:
        print(f"experiments.sample: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if out.endswith(".npz"):
        artifacts.write_npz(out, images=images)
    else:
        artifacts.write_png(out, artifacts.image_grid(images, min(args.columns, args.n)), scale=2)
    print(f"[sample] {args.n} image(s) from {args.run_dir} with seed {args.seed} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
