"""How fragile is a first stage's latent space? Decode encoder means plus noise.

For a finished diffusion autoencoder run (the tokenizer's codes are discrete, so it is not
covered), encodes ``--n`` held-out test images, then decodes

    z = mean + r * spread * noise,   noise ~ N(0, I),  spread = std of all encoder means

for each ``r`` of ``--radii`` and scores the decodes with both committed evaluators against
the train split, exactly as the calibration rows are scored (``metrics.calibration``): so
every figure is comparable with a run's fd_eval. ``r = 0`` is the reconstruction. It also
prints the posterior's own width (mean of exp(log_var / 2)) against the spread: a decoder
trained on a posterior much narrower than the spread never saw the latents between the
encoder's points, and a denoiser whose errors land there decodes them as it can.

    python benchmarks/latent_probe.py reports/quick/fashion_mnist/runs/diffusion-autoencoder-z128-s0 \
        --data-dir /usr/share/datasets/fashion-mnist [--grid OUT.png] [--out OUT.json]

Wrote ``benchmarks/results/latent_probe.json`` for the committed seed-0 autoencoder.
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def _decode(autoencoder, z, batch: int = 500) -> np.ndarray:
    """z [n, s, s, c] -> uint8 images [n, H, W, C], converted as a run's samples are."""
    import tensorflow as tf

    from common.files import to_uint8

    return np.concatenate([to_uint8(autoencoder.decode(tf.convert_to_tensor(z[i:i + batch])))
                           for i in range(0, len(z), batch)])


def probe(run_dir: str, radii, *, n: int = 2000, seed: int = 0, data_dir=None, cache_dir=None,
          reference_limit: int | None = None) -> dict:
    """The decodes of ``n`` held-out images' encoder means plus noise of each radius,
    scored by both evaluators. Returns the record written as JSON."""
    import tensorflow as tf

    from experiments.runs import load_run
    from metrics.calibration import held_out_images, score_calibration

    loaded = load_run(run_dir)
    if (loaded.family, loaded.stage) != ("diffusion", "autoencoder"):
        raise SystemExit(f"{run_dir} is a {loaded.family} {loaded.stage} run, not a diffusion "
                         f"autoencoder: pass a runs/diffusion-autoencoder-z<size>-s<seed> folder")
    identity = loaded.record.identity
    dataset = identity["dataset"]
    images = held_out_images(n, seed=seed, dataset=dataset, image_size=int(identity["image_size"]),
                             channels=int(identity["channels"]), data_dir=data_dir)
    x = tf.convert_to_tensor(images.astype(np.float32) / 127.5 - 1.0)
    mean, log_var = loaded.model.encode(x)
    mean, log_var = mean.numpy(), log_var.numpy()
    spread = float(mean.std())
    posterior_sd = float(np.exp(0.5 * log_var).mean())
    rng = np.random.default_rng(seed)
    sets = {"real test images": images}
    for r in radii:
        noise = rng.standard_normal(mean.shape).astype(np.float32)
        sets[f"r={r:g}"] = _decode(loaded.model, mean + r * spread * noise)
    rows = score_calibration(sets, dataset=dataset, data_dir=data_dir, cache_dir=cache_dir,
                             seed=seed, reference_limit=reference_limit)
    keep = ("set", "n_samples", "reference_images", "fd_eval", "kid", "precision", "recall",
            "fd_eval2", "kid_eval2", "metric_network", "metric_network2")
    return {"run": os.path.relpath(os.path.abspath(run_dir), ROOT),
            "latent_shape": list(mean.shape[1:]), "latent_spread": spread,
            "posterior_sd": posterior_sd, "posterior_sd_over_spread": posterior_sd / spread,
            "seed": seed, "autoencoder_fields": identity["fields"],
            "rows": [{k: row[k] for k in keep if k in row} for row in rows],
            "images": {name: sets[name][:32] for name in sets}}


def _grid(images: dict, path: str) -> None:
    """One row of 16 images per set, labelled."""
    from common import figures

    plt = figures.pyplot()
    fig, axes = plt.subplots(len(images), 1, figsize=(8, 0.75 * len(images) + 0.3))
    for ax, (name, x) in zip(np.atleast_1d(axes), images.items()):
        strip = np.concatenate(list(x[:16, :, :, 0]), axis=1)
        ax.imshow(strip, cmap="gray", vmin=0, vmax=255)
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    figures.save_figure(plt, fig, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a finished diffusion autoencoder run folder")
    parser.add_argument("--radii", type=float, nargs="+", default=[0.0, 0.1, 0.25, 0.5])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None, help="JSON record (default: print only)")
    parser.add_argument("--grid", default=None, help="a PNG of 16 decodes per radius")
    args = parser.parse_args(argv)
    if any(not np.isfinite(r) or r < 0 for r in args.radii):
        parser.error("--radii: give finite numbers >= 0")
    record = probe(args.run_dir, args.radii, n=args.n, seed=args.seed, data_dir=args.data_dir)
    print(f"{record['run']}: latent {record['latent_shape']}, spread of the means "
          f"{record['latent_spread']:.3f}, posterior sd {record['posterior_sd']:.4g} "
          f"({record['posterior_sd_over_spread']:.4g} of the spread)")
    print(f"{'decoded from':22s} {'fd_eval':>8s} {'kid':>8s} {'prec':>6s} {'recall':>6s} "
          f"{'fd_eval2':>9s}")
    for row in record["rows"]:
        print(f"{row['set']:22s} {row['fd_eval']:8.3f} {row['kid']:8.4f} {row['precision']:6.3f} "
              f"{row['recall']:6.3f} {row['fd_eval2']:9.4f}")
    images = record.pop("images")
    if args.grid:
        _grid(images, args.grid)
    if args.out:
        from common import files

        files.write_json(args.out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
