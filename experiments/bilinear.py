"""Thesis 003's bilinear game: min_theta max_phi theta * phi, under five optimisation methods.

The game's vector field is F(theta, phi) = (d/dtheta, -d/dphi) theta*phi = (phi, -theta) = A w
with A = [[0, 1], [-1, 0]] (A^2 = -I); its only equilibrium is w* = 0. For a step size eta
the squared norm N_t^2 = theta_t^2 + phi_t^2 changes per step by (Gidel et al. 2019, "A
Variational Inequality Perspective on GANs", sec. 3 and Appendix; thesis 003's chapter on
optimisation):

- simultaneous gradient steps  w+ = (I - eta A) w:                N^2 x (1 + eta^2)   (diverges)
- alternating steps            theta+ = theta - eta phi, phi+ = phi + eta theta+:
                               a map of determinant 1: no contraction, N^2 oscillates
- implicit (proximal) step     w+ = w - eta F(w+) = (I + eta A)^-1 w: N^2 x 1 / (1 + eta^2)
- extragradient (Korpelevich 1976)  w+ = w - eta F(w - eta F(w)):  N^2 x (1 - eta^2 + eta^4)
- Adam (Kingma & Ba 2015), simultaneous, default betas: no closed form (measured only).

Everything runs in float64 numpy; ``run(config)`` returns the trajectories and the table of
measured per-step factors beside the closed forms, ``write_reports`` writes
``bilinear.{md,csv,json}`` and ``bilinear.png``.
"""
from __future__ import annotations

import dataclasses
import os
import typing

import numpy as np

from common import files as artifacts
from common import figures
from common.config import to_jsonable

A = np.array([[0.0, 1.0], [-1.0, 0.0]])
#: the largest step size: beyond it the simultaneous steps' squared norm overflows float64
MAX_ETA = 1.0


@dataclasses.dataclass
class BilinearConfig:
    """etas: step sizes (each > 0); iterations: steps per run; start: (theta_0, phi_0);
    adam_betas, adam_epsilon: Adam's (Kingma & Ba 2015 defaults)."""
    etas: tuple = (0.05, 0.2, 0.5, 0.9)
    iterations: int = 200
    start: tuple = (1.0, 1.0)
    adam_betas: tuple = (0.9, 0.999)
    adam_epsilon: float = 1e-8

    def validate(self):
        # (0, MAX_ETA]: nan and inf are not in it, and every method's squared norm stays
        # finite in float64 over the paper profile's 1000 steps (simultaneous steps grow
        # it by 1 + eta^2 per step: 2^1000 ~ 1e301 at eta = 1, inf beyond 1.03)
        bad = [e for e in self.etas
               if isinstance(e, bool) or not isinstance(e, (int, float))
               or not 0 < e <= MAX_ETA]
        if bad or not self.etas:
            raise ValueError(f"bilinear game: step size(s) {bad or list(self.etas)} are not > 0 "
                             f"and <= {MAX_ETA:g}; give step sizes in (0, {MAX_ETA:g}], e.g. "
                             f"--bilinear-eta 0.05 0.2 0.5 (larger ones overflow float64 within "
                             f"the paper profile's 1000 steps)")
        if int(self.iterations) < 1:
            raise ValueError(f"bilinear game: iterations must be >= 1, got {self.iterations}")


PRESETS = {"smoke": {"iterations": 40}, "quick": {}, "paper": {"iterations": 1000},
           "colab": {"iterations": 1000}}


def field(w):
    """F(w) = (phi, -theta): the simultaneous gradient field of min_theta max_phi theta*phi."""
    return A @ w


# ------------------------------------------------------------------------ methods
# Each method: (w [2], eta, state dict) -> w_next [2]. Cited in the module docstring.
def simultaneous(w, eta, state):
    return w - eta * field(w)


def alternating(w, eta, state):
    theta = w[0] - eta * w[1]
    phi = w[1] + eta * theta
    return np.array([theta, phi])


def implicit(w, eta, state):
    # w+ solves w+ = w - eta A w+  <=>  (I + eta A) w+ = w
    return np.linalg.solve(np.eye(2) + eta * A, w)


def extragradient(w, eta, state):
    half = w - eta * field(w)
    return w - eta * field(half)


def adam(w, eta, state):
    b1, b2, eps = state["betas"][0], state["betas"][1], state["epsilon"]
    g = field(w)
    state["t"] = state.get("t", 0) + 1
    state["m"] = b1 * state.get("m", 0.0) + (1 - b1) * g
    state["v"] = b2 * state.get("v", 0.0) + (1 - b2) * g * g
    m_hat = state["m"] / (1 - b1 ** state["t"])
    v_hat = state["v"] / (1 - b2 ** state["t"])
    return w - eta * m_hat / (np.sqrt(v_hat) + eps)


METHODS = {"simultaneous": simultaneous, "alternating": alternating, "implicit": implicit,
           "extragradient": extragradient, "adam": adam}

# Closed-form per-step factor of N^2, where the method has one.
CLOSED_FORMS = {
    "simultaneous": lambda eta: 1.0 + eta ** 2,
    "implicit": lambda eta: 1.0 / (1.0 + eta ** 2),
    "extragradient": lambda eta: 1.0 - eta ** 2 + eta ** 4,
}
CLOSED_FORM_TEXT = {"simultaneous": "1 + eta^2", "implicit": "1 / (1 + eta^2)",
                    "extragradient": "1 - eta^2 + eta^4",
                    "alternating": "none (determinant 1: oscillates, no contraction)",
                    "adam": "none"}


def trajectory(method: str, eta: float, config: BilinearConfig) -> np.ndarray:
    """N_t^2 for t = 0..iterations (float64)."""
    step = METHODS[method]
    state = {"betas": config.adam_betas, "epsilon": config.adam_epsilon}
    w = np.asarray(config.start, np.float64)
    norms = [float(w @ w)]
    for _ in range(int(config.iterations)):
        w = step(w, eta, state)
        norms.append(float(w @ w))
    return np.asarray(norms)


def per_step_factors(norms: np.ndarray) -> np.ndarray:
    """N_{t+1}^2 / N_t^2 for each step with N_t > 0."""
    before, after = norms[:-1], norms[1:]
    keep = before > 0
    return after[keep] / before[keep]


def run(config: BilinearConfig) -> dict:
    """{"curves": {method: {eta: [N_t^2]}}, "rows": [table rows]}."""
    config.validate()
    curves, rows = {}, []
    for method in METHODS:
        for eta in config.etas:
            norms = trajectory(method, float(eta), config)
            curves.setdefault(method, {})[float(eta)] = norms
            factors = per_step_factors(norms)
            closed = CLOSED_FORMS.get(method)
            closed_value = closed(float(eta)) if closed else None
            geometric = float(np.exp(np.mean(np.log(factors)))) if len(factors) else None
            rows.append({
                "method": method, "eta": float(eta), "iterations": int(config.iterations),
                "measured_factor_first_step": float(factors[0]) if len(factors) else None,
                "measured_factor_geometric_mean": geometric,
                "closed_form": CLOSED_FORM_TEXT[method], "closed_form_value": closed_value,
                "max_abs_deviation": (float(np.max(np.abs(factors - closed_value)))
                                      if closed and len(factors) else None),
                "final_squared_norm": float(norms[-1])})
    return {"curves": curves, "rows": rows, "config": to_jsonable(config)}


COLUMNS = ["method", "eta", "iterations", "measured_factor_first_step",
           "measured_factor_geometric_mean", "closed_form", "closed_form_value",
           "max_abs_deviation", "final_squared_norm"]


def markdown(result: dict, context: str) -> str:
    head = ["method", "eta", "measured factor (step 1)", "measured (geometric mean)",
            "closed form", "closed-form value", "max |measured - closed|", "final N^2"]
    fmt = lambda v: "" if v is None else (f"{v:.12g}" if isinstance(v, float) else str(v))  # noqa: E731
    out = ["# Thesis 003: the bilinear game min_theta max_phi theta*phi", "", context, "",
           "Per-step factor of the squared norm N^2 = theta^2 + phi^2 (float64), measured "
           "beside its closed form.", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["rows"]:
        out.append("| " + " | ".join(fmt(r[k]) for k in (
            "method", "eta", "measured_factor_first_step", "measured_factor_geometric_mean",
            "closed_form", "closed_form_value", "max_abs_deviation", "final_squared_norm")) + " |")
    return "\n".join(out) + "\n"


def write_figure(path, result: dict, title: str = ""):
    plt = figures.pyplot()
    etas = list(next(iter(result["curves"].values())))
    fig, axes = plt.subplots(1, len(etas), figsize=(4.2 * len(etas), 3.6), squeeze=False)
    for ax, eta in zip(axes[0], etas):
        for method, by_eta in result["curves"].items():
            norms = np.maximum(by_eta[eta], 1e-300)
            ax.semilogy(np.arange(len(norms)), norms, label=method)
        ax.set_title(f"eta = {eta:g}")
        ax.set_xlabel("iteration")
        ax.set_ylabel("theta^2 + phi^2")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figures.save_figure(plt, fig, path, title)


def write_reports(out_dir, result: dict, context: str):
    """bilinear.{md,csv,json} and bilinear.png in ``out_dir``, each written atomically."""
    base = os.path.join(out_dir, "bilinear")
    artifacts.write_csv(base + ".csv", result["rows"], COLUMNS)
    artifacts.write_json(base + ".json", {"experiment": "bilinear", "context": context,
                                          "config": result["config"], "rows": result["rows"]})
    artifacts.write_text(base + ".md", markdown(result, context))
    write_figure(base + ".png", result, "min_theta max_phi theta*phi: squared norm per method")


def config_for(profile: str, etas: typing.Optional[list] = None) -> BilinearConfig:
    values = dict(PRESETS[profile])
    if etas:
        values["etas"] = tuple(float(e) for e in etas)
    config = BilinearConfig(**values)
    config.validate()
    return config
