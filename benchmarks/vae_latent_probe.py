"""Where does a VAE's latent size go? Active units, and what the inactive ones cost.

For a finished VAE run (any loss), encodes ``--n`` held-out test images and reports

- the active units (Burda, Grosse & Salakhutdinov 2016, "Importance Weighted
  Autoencoders", section 5.2): dimension u is active when Cov_x(E_q[z_u | x]) > 0.01;
- the KL per dimension, split into active and inactive dimensions, the fewest units that
  hold 90% of it, and the share of z's variance that is signal, Var_x(mu), rather than the
  posterior's noise, E_x[sigma^2] (stochastic encoders);
- the decoder's attention to each: the mean norm of the ``project`` kernel's rows (the
  weights from z_u into the decoder) over the active and over the inactive dimensions;

then decodes and scores with both committed evaluators, as the calibration rows are scored
(``metrics.calibration``, against the train split, so every figure compares with a run's
fd_eval):

- ``real test images`` (the floor);
- ``reconstructions`` (z = the encoder's mean);
- ``prior samples`` (z ~ p(z): what the run's samples are);
- ``prior samples, inactive zeroed``: the same z with every inactive dimension set to 0,
  its prior mean. The posterior of an inactive dimension is the prior, so a decoder that
  had learnt to ignore it draws the same image; the gap between the last two rows is what
  the noise in the inactive dimensions still costs the samples.

    python benchmarks/vae_latent_probe.py reports/quick/fashion_mnist/runs/vae-elbo-b128-z128-s0 \\
        --data-dir /usr/share/datasets/fashion-mnist [--out OUT.json]

Wrote ``benchmarks/results/vae_latent_probe.json`` (the VAE rows at latent 128 and 2048).
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

#: Burda et al. (2016), section 5.2: the activity threshold on Cov_x(E_q[z_u | x]).
ACTIVITY_THRESHOLD = 0.01


def activity(mu: np.ndarray) -> np.ndarray:
    """Cov_x(E_q[z_u | x]) per dimension u: the variance over images of the encoder's
    mean, [z]."""
    return np.var(np.asarray(mu, np.float64), axis=0)


def kl_per_dimension(mu: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """KL(N(mu, sigma^2) || N(0, 1)) per dimension, averaged over images: [z]
    (Kingma & Welling 2014, appendix B)."""
    mu = np.asarray(mu, np.float64)
    log_var = np.asarray(log_var, np.float64)
    return np.mean(0.5 * (np.square(mu) + np.exp(log_var) - 1.0 - log_var), axis=0)


def units_holding(kl: np.ndarray, share: float = 0.9) -> int:
    """The fewest dimensions whose KL sums to ``share`` of the total: how concentrated the
    code is (a VAE that spreads its information thinly needs most of its units)."""
    ordered = np.sort(np.asarray(kl, np.float64))[::-1]
    return int(np.searchsorted(np.cumsum(ordered), share * ordered.sum()) + 1)


def signal_fraction(mu: np.ndarray, log_var: np.ndarray) -> float:
    """sum_u Var_x(mu_u) / sum_u (Var_x(mu_u) + E_x[sigma_u^2]): the share of the variance
    of the decoder's input z = mu + sigma eps that carries the image (the rest is the
    posterior's noise the decoder must see through)."""
    signal = activity(mu).sum()
    return float(signal / (signal + np.exp(np.asarray(log_var, np.float64)).mean(axis=0).sum()))


def _decode(model, z, batch: int = 500) -> np.ndarray:
    """z [n, latent] -> uint8 images, converted as a run's samples are."""
    import tensorflow as tf

    from common.files import to_uint8

    return np.concatenate([to_uint8(model.generate(tf.convert_to_tensor(z[i:i + batch])))
                           for i in range(0, len(z), batch)])


def probe(run_dir: str, *, n: int = 2000, seed: int = 0, data_dir=None, cache_dir=None,
          reference_limit: int | None = None) -> dict:
    """The latent statistics of a VAE run and the scores of its four decoded sets.
    Returns the record written as JSON."""
    import tensorflow as tf

    from experiments.runs import load_run
    from metrics.calibration import held_out_images, score_calibration

    loaded = load_run(run_dir)
    if loaded.family != "vae":
        raise SystemExit(f"{run_dir} is a {loaded.family} {loaded.stage} run, not a VAE: pass "
                         f"a runs/vae-<loss>-b<batch>-z<size>-s<seed> folder")
    model, identity = loaded.model, loaded.record.identity
    dataset = identity["dataset"]
    images = held_out_images(n, seed=seed, dataset=dataset, image_size=int(identity["image_size"]),
                             channels=int(identity["channels"]), data_dir=data_dir)
    x = tf.convert_to_tensor(images.astype(np.float32) / 127.5 - 1.0)
    mu, log_var = (t.numpy() for t in model.encode(x))
    active = activity(mu) > ACTIVITY_THRESHOLD
    # rows of the project kernel [latent, units]: how strongly each z_u drives the decoder
    row_norm = np.linalg.norm(model.decoder.get_layer("project").kernel.numpy(), axis=1)
    prior = model.sample_latents(n, seed).numpy()
    sets = {"real test images": images,
            "reconstructions": _decode(model, mu),
            "prior samples": _decode(model, prior),
            "prior samples, inactive zeroed": _decode(model, np.where(active, prior, 0.0))}
    rows = score_calibration(sets, dataset=dataset, data_dir=data_dir, cache_dir=cache_dir,
                             seed=seed, reference_limit=reference_limit)
    keep = ("set", "n_samples", "reference_images", "fd_eval", "kid", "precision", "recall",
            "fd_eval2", "kid_eval2", "metric_network", "metric_network2")
    moved = np.abs(sets["prior samples"].astype(np.float64)
                   - sets["prior samples, inactive zeroed"]).mean()
    record = {"run": os.path.relpath(os.path.abspath(run_dir), ROOT),
              "loss": loaded.config.loss, "latent_size": int(loaded.config.latent_size),
              "seed": int(identity.get("seed", 0)), "probe_seed": seed,
              "active_units": int(active.sum()),
              "project_row_norm_active": float(row_norm[active].mean()) if active.any() else None,
              "project_row_norm_inactive": (float(row_norm[~active].mean())
                                            if (~active).any() else None),
              "grey_levels_moved_by_inactive_noise": float(moved),
              "rows": [{k: row[k] for k in keep if k in row} for row in rows]}
    if not model.deterministic_encoder:
        kl = kl_per_dimension(mu, log_var)
        record["kl_active"] = float(kl[active].sum())
        record["kl_inactive"] = float(kl[~active].sum())
        record["units_holding_90pct_kl"] = units_holding(kl, 0.9)
        record["signal_fraction"] = signal_fraction(mu, log_var)
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", help="finished VAE run folders")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None, help="JSON record of every run (default: print only)")
    args = parser.parse_args(argv)
    records = []
    for run_dir in args.run_dirs:
        record = probe(run_dir, n=args.n, seed=args.seed, data_dir=args.data_dir)
        records.append(record)
        kl = (f", KL {record['kl_active']:.2f} nats in them, {record['kl_inactive']:.2f} in the "
              f"rest, 90% of it in {record['units_holding_90pct_kl']} units, signal "
              f"{record['signal_fraction']:.3f} of z's variance" if "kl_active" in record else "")
        print(f"{record['run']}: {record['active_units']} of {record['latent_size']} units "
              f"active{kl}; project rows' norm active {record['project_row_norm_active']}, "
              f"inactive {record['project_row_norm_inactive']}; zeroing the inactive units "
              f"moves a sample by {record['grey_levels_moved_by_inactive_noise']:.2f} grey levels")
        print(f"  {'decoded from':32s} {'fd_eval':>8s} {'kid':>8s} {'prec':>6s} {'recall':>6s} "
              f"{'fd_eval2':>9s}")
        for row in record["rows"]:
            print(f"  {row['set']:32s} {row['fd_eval']:8.3f} {row['kid']:8.4f} "
                  f"{row['precision']:6.3f} {row['recall']:6.3f} {row['fd_eval2']:9.4f}")
    if args.out:
        from common import files

        files.write_json(args.out, {"n": args.n, "seed": args.seed, "runs": records})
    return 0


if __name__ == "__main__":
    sys.exit(main())
