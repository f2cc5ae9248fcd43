"""Optimisers chosen by name, including the extragradient family of the game-theory view of GANs.

``make_optimizer(name, learning_rate, **settings)`` builds one player's optimiser from
:data:`OPTIMIZERS`. Plain names ("sgd", "adam", "rmsprop") give the Keras optimiser;
"extra_*" and "past_extra_*" wrap it in :class:`Extragradient`, so extragradient works
with *any* base optimiser (ExtraSGD, ExtraAdam, ExtraRMSprop).

Extragradient (Korpelevich 1976, "The extragradient method for finding saddle points and
other problems"; for GANs Gidel et al. 2019, "A Variational Inequality Perspective on
Generative Adversarial Networks", Algorithms 1-4):

    w_{t+1/2} = w_t - eta * F(w_t)             (extrapolation)
    w_{t+1}   = w_t - eta * F(w_{t+1/2})       (update, from w_t with the look-ahead gradient)

where "- eta * F" is the base optimiser's step (SGD: exactly the above; Adam: ExtraAdam,
whose moment estimates see both gradients, as in Gidel et al.'s reference code).
Extrapolation from the past (Gidel et al. 2019, sec. 4.1, eq. 14, after Popov 1980)
re-uses the previous update's step instead of a fresh gradient at w_t, so it costs one
gradient per iteration:

    w_{t+1/2} = w_t + delta_{t-1},   w_{t+1} = w_t + delta_t,   delta_t = base step at F(w_{t+1/2}).

A training step with several players extrapolates *every* player first (each with its own
``extrapolate``), then updates every player from its saved point (``apply``): the
variational-inequality step for the joint game.
"""
from __future__ import annotations

import keras
import tensorflow as tf


def _sgd(learning_rate, *, beta_1=0.0, clipvalue=None, **_):
    return keras.optimizers.SGD(learning_rate, momentum=beta_1, clipvalue=clipvalue)


def _adam(learning_rate, *, beta_1=0.9, beta_2=0.999, epsilon=1e-7, clipvalue=None, **_):
    return keras.optimizers.Adam(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                                 clipvalue=clipvalue)


def _rmsprop(learning_rate, *, rho=0.9, epsilon=1e-7, clipvalue=None, **_):
    return keras.optimizers.RMSprop(learning_rate, rho=rho, epsilon=epsilon,
                                    clipvalue=clipvalue)


BASE_OPTIMIZERS = {"sgd": _sgd, "adam": _adam, "rmsprop": _rmsprop}


class Extragradient(tf.Module):
    """Extragradient (``past=False``) or extrapolation from the past (``past=True``)
    around a Keras optimiser ``base`` (see the module docstring for the equations).

    ``extrapolate(grads, variables)`` moves the variables to w_{t+1/2} and remembers w_t;
    ``apply(grads, variables)`` (grads taken at w_{t+1/2}) puts w_t back and takes the base
    optimiser's step from there. With ``past=True`` ``extrapolate`` ignores its gradients
    (pass None): it re-applies the previous update's step. Saved by ``tf.train.Checkpoint``
    with its base optimiser and slots, so a resumed run continues exactly.
    """

    #: a training step must call ``extrapolate`` (for every player) before ``apply``
    extrapolates = True

    def __init__(self, base, past: bool = False, name: str = "extragradient"):
        super().__init__(name=name)
        self.base = base
        self.past = bool(past)
        self.saved = []   # w_t of each variable
        self.steps = []   # delta of the last update (past variant)

    @property
    def extrapolation_uses_gradients(self) -> bool:
        return not self.past

    @property
    def iterations(self):
        return self.base.iterations

    def build(self, variables):
        self.base.build(variables)
        # Same placement and replica aggregation as the variables they shadow.
        self.saved = [tf.Variable(tf.zeros_like(v), trainable=False, name="saved")
                      for v in variables]
        if self.past:
            self.steps = [tf.Variable(tf.zeros_like(v), trainable=False, name="step")
                          for v in variables]

    def extrapolate(self, grads, variables):
        """w_{t+1/2}: the base step at F(w_t) (or the last update's step when ``past``)."""
        for saved, v in zip(self.saved, variables):
            saved.assign(v)
        if self.past:
            for step, v in zip(self.steps, variables):
                v.assign_add(step)
        else:
            self.base.apply(grads, variables)

    def apply(self, grads, variables):
        """w_{t+1} = w_t + base step at F(w_{t+1/2}) (``grads``, taken at w_{t+1/2})."""
        for saved, v in zip(self.saved, variables):
            v.assign(saved)
        self.base.apply(grads, variables)
        if self.past:
            for step, saved, v in zip(self.steps, self.saved, variables):
                step.assign(tf.convert_to_tensor(v) - tf.convert_to_tensor(saved))


def _extra(base_name, past=False):
    def build(learning_rate, **settings):
        return Extragradient(BASE_OPTIMIZERS[base_name](learning_rate, **settings), past=past,
                             name=("past_extra_" if past else "extra_") + base_name)
    return build


OPTIMIZERS = {
    **BASE_OPTIMIZERS,
    **{f"extra_{name}": _extra(name) for name in BASE_OPTIMIZERS},
    **{f"past_extra_{name}": _extra(name, past=True) for name in BASE_OPTIMIZERS},
}


def check_optimizer_name(name: str, where: str = "optimizer"):
    """ValueError naming the known optimisers when ``name`` is not one of them."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown {where} {name!r}; known: {', '.join(sorted(OPTIMIZERS))}")


def make_optimizer(name: str, learning_rate, **settings):
    """One player's optimiser by name (``OPTIMIZERS``); settings the base ignores are dropped
    (``beta_1`` of RMSprop, ...). ``learning_rate`` may be a Keras schedule."""
    check_optimizer_name(name)
    return OPTIMIZERS[name](learning_rate, **settings)


def extrapolates(optimizer) -> bool:
    """Whether a training step must extrapolate before it applies ``optimizer``'s update."""
    return bool(getattr(optimizer, "extrapolates", False))
