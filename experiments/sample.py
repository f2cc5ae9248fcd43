"""Sample from any finished run (stylegan2-ada's ``generate.py``, for every family).

    python -m experiments.sample RUN_DIR [--n 64] [--seed 0] [--out grid.png|samples.npz]
                                 [--columns 8]

RUN_DIR is a row's folder under ``<out>/runs/`` (a finished run: its metrics.json
exists). The images are a pure function of (run, seed, n): the same command
writes the same file. ``.png`` writes a grid, ``.npz`` the uint8 images
(``images``, [n, H, W, C]) that any metric tool reads. The family's sampler
fields (``models.Family.sampler_fields``: diffusion's sampler, sampling_steps,
ddim_eta, guidance_scale; the prior's temperature, top_k, guidance_scale; the GAN's
truncation_psi) are set with ``--set FIELD=VALUE`` (repeatable), converted against the
field's type; any other field changes training, which takes ``run_all.py --set``.
"""
from __future__ import annotations

import argparse
import os
import sys

# Before anything imports TensorFlow: its native (C++) log lines, such as "failed call to
# cuInit" on a machine without a GPU, would precede every one-line error on stderr.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1  # a write failed (a full disk): nothing of the run was touched
#: the most images one command samples (FID takes 50,000): a typo must not exhaust memory
MAX_N = 100_000
#: the seeds the samplers take (a step's noise seed is seed * 1_000_003 + i, in int64)
MAX_SEED = 2 ** 31 - 1
#: what a run folder holds (experiments.runner writes them; its metrics.json describes its
#: samples): never overwritten by this command
RUN_FILES = ("config.json", "metrics.json", "samples.npz", "samples.png", "history.csv",
             "loss_curves.png")
RUN_FOLDERS = ("checkpoints", "samples", "tensorboard")


def _parse_setting(text):
    """``--set FIELD=VALUE`` -> (field, value text); ValueError for another shape."""
    from common.config import parse_setting

    return parse_setting(text)


def sampler_settings(family, settings: dict) -> dict:
    """``settings`` (field -> text, or a value from Python) as typed values of ``family``'s
    sampler fields; ConfigError (a ValueError) naming the sampler fields for any other
    field, and for a value of the wrong type. A ``family.`` prefix must name the run's."""
    from common.config import ConfigError, convert_overrides, value_text

    fields = tuple(family.sampler_fields)
    texts = {}
    for key, value in settings.items():
        prefix, dot, name = key.rpartition(".")
        if dot and prefix != family.name:
            raise ConfigError(f"--set {key}: this run is of the {family.name} family, not "
                              f"{prefix}")
        texts[name] = value if isinstance(value, str) else value_text(value)
    choices = (f"its sampler fields are {', '.join(fields)}" if fields
               else "it has no sampler fields")
    return convert_overrides(
        family.config_cls, texts, where="--set ", allowed=fields,
        advice=f"not a sampler field of the {family.name} family ({choices}); a training "
               f"field takes a new run: run_all.py --set {family.name}.FIELD=VALUE")


def _family_of(run_dir):
    """The family recorded in ``run_dir``'s config.json, None when it cannot be read
    (``load_run`` then says why)."""
    from common.run_record import RunConfig
    from models import get_family

    try:
        return get_family(RunConfig.read(run_dir).family)
    except (OSError, ValueError, TypeError):
        return None


def sample_run(run_dir: str, n: int = 64, seed: int = 0, settings: dict | None = None):
    """uint8 images [n, H, W, C] from the finished run in ``run_dir`` (deterministic in seed).
    ``settings``: sampler field -> value (or its text, as ``--set`` gives it)."""
    import dataclasses

    from common.config import ConfigError
    from experiments.runner import generate_uint8
    from experiments.runs import RunLoadError, load_run
    from models import get_family

    family = _family_of(run_dir) if settings else None
    if family is not None:  # checked before the weights are read
        try:
            settings = sampler_settings(family, settings)
        except ConfigError as err:
            raise RunLoadError(str(err)) from err
    loaded = load_run(run_dir)
    model = loaded.model
    if getattr(model, "IS_FIRST_STAGE", False):
        raise RunLoadError(f"{run_dir} holds the {loaded.stage} stage of the {loaded.family} "
                           f"family, which does not sample; pass the folder of a table row "
                           f"that uses it")
    if settings:
        if family is None:
            try:
                settings = sampler_settings(get_family(loaded.family), settings)
            except ConfigError as err:
                raise RunLoadError(str(err)) from err
        model.config = dataclasses.replace(model.config, **settings)
        model.configure_sampler()
    return generate_uint8(model, n, seed=seed)


def _run_file(out) -> str | None:
    """The run folder whose own file (or subfolder) ``out`` would overwrite, else None."""
    path = os.path.realpath(out)  # a link to a run's samples.npz is that file
    folder, name = os.path.split(path)
    if name in RUN_FILES and os.path.exists(os.path.join(folder, "config.json")):
        return folder
    parent = os.path.dirname(folder)
    if os.path.basename(folder) in RUN_FOLDERS and os.path.exists(
            os.path.join(parent, "config.json")):
        return parent
    return None


def check_options(n: int, seed: int, columns: int, out: str) -> None:
    """Every option and the output place, checked before the run is loaded (minutes
    before the first image is written): ValueError naming the option."""
    from common.files import unencodable_name, writable_dir_problem

    if not 1 <= n <= MAX_N:
        raise ValueError(f"--n {n}: give 1 to {MAX_N} images")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"--seed {seed}: give 0 to {MAX_SEED}")
    if columns < 1:
        raise ValueError(f"--columns {columns}: give 1 or more (at most --n are used)")
    if not out.endswith((".png", ".npz")):
        raise ValueError(f"--out {out!r}: end it in .png (a grid) or .npz (the images)")
    if os.path.isdir(out):
        raise ValueError(f"--out {out!r} is a folder; name a file in it (.png or .npz)")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise ValueError(f"--out {out!r}: the folder {folder} does not exist")
    problem = unencodable_name(out) or writable_dir_problem(folder)
    if problem:
        raise ValueError(f"--out {out!r}: {problem}")
    run = _run_file(out)
    if run is not None:
        raise ValueError(f"--out {out!r} is a file of the run in {run} (its metrics.json "
                         f"describes its samples); write elsewhere, e.g. --out "
                         f"{os.path.join(run, 'sampled.npz')}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.sample",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--n", type=int, default=64, help="number of images (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None,
                        help="grid.png or samples.npz (default RUN_DIR/sampled_seed<SEED>.png)")
    parser.add_argument("--columns", type=int, default=8, help="grid columns (.png)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="change a sampler field of the run's config (repeatable), e.g. "
                             "--set guidance_scale=2: diffusion's sampler, sampling_steps, "
                             "ddim_eta, guidance_scale; the prior's temperature, top_k, "
                             "guidance_scale; the GAN's truncation_psi")
    args = parser.parse_args(argv)
    out = args.out or os.path.join(args.run_dir, f"sampled_seed{args.seed}.png")
    try:  # before TensorFlow is imported: a bad option is answered at once
        check_options(args.n, args.seed, args.columns, out)
    except ValueError as err:
        print(f"experiments.sample: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from common import files as artifacts
    from experiments.runs import RunLoadError

    try:
        settings = {}
        for key, value in map(_parse_setting, args.set):
            if settings.setdefault(key, value) != value:
                raise ValueError(f"--set {key} given twice ({settings[key]} and {value}); "
                                 f"give it once")
        images = sample_run(args.run_dir, args.n, args.seed, settings)
    except (RunLoadError, ValueError) as err:
        print(f"experiments.sample: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        if out.endswith(".npz"):
            artifacts.write_npz(out, images=images)
        else:
            artifacts.write_png(out, artifacts.image_grid(images, min(args.columns, args.n)),
                                scale=2)
    except artifacts.DiskFull as err:
        print(f"experiments.sample: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    print(f"[sample] {args.n} image(s) from {args.run_dir} with seed {args.seed} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
