"""The plan before training (``run_all.py --plan``): what every selected run and stage
costs, before a GPU hour is spent.

For each run (and each shared first stage, once) it gives the parameters, the forward
FLOPs per image, what one training step runs, the steps and images of the profile, the
training, validation, sampling and metric FLOPs, the memory at the profile's batch and the
projected hours on named accelerators and on this machine; and whether the batch fits,
and what fixes it when it does not. Totals for the grid. Nothing is trained and no
dataset is read (the split sizes of the named datasets are known).

How each figure is obtained (stated again in plan.md):

- **Forward FLOPs** of every network, per image: TensorFlow's profiler
  (``tf.compat.v1.profiler.profile`` with ``ProfileOptionBuilder.float_operation()``) on
  the graph of a concrete function of the network's forward pass at batch 1 (FLOPs are
  linear in the batch). TensorFlow registers no count for ``Einsum`` (the transformer's
  attention): :func:`_register_einsum_flops` adds 2 x the product of the equation's
  index sizes.
- **One training step**, per image of its batch: the sum over the passes the family's
  step runs (:data:`ACCOUNTS`: e.g. the GAN's critic steps, each a generator forward and
  discriminator passes on reals and fakes, the gradient penalty's double backprop, the
  generator step through the discriminator), with a backward pass costing 2 x the
  forward (input and weight gradients), 1 x where only input gradients flow (a frozen
  network or one the step does not update). ``benchmarks/rehearse.py`` checks this sum
  against the profiler's count of the whole traced train step (within 10%).
- **Activation memory per example**: measured on this machine, at full width: the
  allocator's peak during a compiled forward and backward pass of each network
  (``tf.config.experimental.get_memory_info``: a GPU's, or the CPU's with
  ``TF_CPU_ALLOCATOR_USE_BFC=true``, which ``run_all.py --plan`` sets; otherwise the
  resident set, a rough fallback) at two small batches, its growth per image (what does
  not grow with the batch cancels), summed over the networks whose activations the step
  holds at once (:data:`ACCOUNTS`) and extrapolated linearly to the profile's batch.
  Halved for bfloat16/float16 (Keras' mixed policies compute and keep activations in
  16 bits). ``benchmarks/rehearse.py`` measures the whole train step's the same way; where
  its record (``benchmarks/results/rehearsal.json``) has the stage, the plan takes the
  measured figure, and the other stages of a rehearsed family and stage the composed one
  times the rehearsal's measured / composed ratio (:class:`Calibration`).
- **State**: the bytes of every variable of the stage's model (weights, EMA copies,
  frozen earlier stages, codebooks) and of its optimiser (slots), plus one gradient per
  trainable weight and the optimiser step's temporaries (the rehearsal's, in gradients'
  bytes); float32 in every precision (mixed policies keep variables float32).
- **Hours**: FLOPs / (the accelerator's data-sheet peak for the run's precision x the
  stated utilisation); this machine: FLOPs / the FLOP/s of the stage's real train step
  where ``benchmarks/rehearse.py`` recorded one here, else of the memory runs.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import time
import types
import typing

import numpy as np

from common import files as artifacts
from common.config import to_jsonable

# --------------------------------------------------------------- the accelerators
#: Utilisation assumed on the accelerators (model FLOPs / peak): 30%, a typical figure
#: for convolutional networks of these sizes in TensorFlow (not measured on a GPU here:
#: ``benchmarks/gpu_check.py`` measures it where one is at hand).
UTILISATION = 0.30
#: Fraction of an accelerator's memory a run may plan to use (the rest: the CUDA
#: context, cuDNN's workspaces, the allocator's fragmentation).
USABLE_MEMORY = 0.90
GB = 1e9

SOURCES = {
    "t4": "NVIDIA T4 Tensor Core GPU data sheet (2019): FP32 8.1 TFLOPS, mixed-precision "
          "FP16/FP32 65 TFLOPS, 16 GB GDDR6 "
          "(https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/tesla-t4/"
          "t4-tensor-core-datasheet-951643.pdf)",
    "a100": "NVIDIA A100 Tensor Core GPU data sheet (2021): FP32 19.5 TFLOPS, TF32 156, "
            "BF16/FP16 312 (dense; 624 with sparsity), 40 or 80 GB "
            "(https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
            "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf)",
    "h100": "NVIDIA H100 Tensor Core GPU data sheet (2023), SXM: FP32 67 TFLOPS, TF32 989 "
            "and BF16/FP16 1,979 with sparsity, i.e. 494 and 989 dense, 80 GB "
            "(https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet)",
}


@dataclasses.dataclass(frozen=True)
class Accelerator:
    """A named accelerator: memory, compute capability (what ``training.runtime`` picks
    the precision by) and data-sheet peaks (FLOP/s) per precision. float32 on Ampere and
    later runs its convolutions and matmuls on TF32 tensor cores (TensorFlow's default,
    ``tf.config.experimental.enable_tensor_float_32_execution``), so its float32 peak is
    TF32's there."""
    key: str
    name: str
    short: str
    memory_gb: float
    compute_capability: tuple
    peak: dict
    source: str

    def peak_for(self, precision: str) -> float:
        # a precision without its own units (bfloat16 on a T4) runs at the float32 rate
        return self.peak.get(precision, self.peak["float32"])


ACCELERATORS = (
    Accelerator("t4", "Colab T4 16 GB", "T4", 16, (7, 5),
                {"float32": 8.1e12, "float16": 65e12}, SOURCES["t4"]),
    Accelerator("a100_40", "A100 40 GB", "A100-40", 40, (8, 0),
                {"float32": 156e12, "bfloat16": 312e12, "float16": 312e12}, SOURCES["a100"]),
    Accelerator("a100_80", "A100 80 GB", "A100-80", 80, (8, 0),
                {"float32": 156e12, "bfloat16": 312e12, "float16": 312e12}, SOURCES["a100"]),
    Accelerator("h100", "H100 80 GB SXM", "H100", 80, (9, 0),
                {"float32": 494e12, "bfloat16": 989e12, "float16": 989e12}, SOURCES["h100"]),
)
HALF = ("bfloat16", "float16")

#: FID Inception-v3 (metrics.build_fid_inception) forward FLOPs per 299x299 image,
#: counted by the profiler like the networks (tests/test_forecast.py recounts it):
#: 2 x 5.71 G multiply-adds, the figure torchvision lists for Inception-v3
#: (https://pytorch.org/vision/stable/models/generated/torchvision.models.inception_v3.html).
INCEPTION_FLOPS = 11.47e9
INCEPTION_SOURCE = ("the profiler's count of metrics.build_fid_inception at 299x299 "
                    "(torchvision lists 5.71 G multiply-adds for Inception-v3)")

#: (train images, held-out images, classes) of the named datasets: their official splits
#: (the held-out split is CelebA's validation, the others' test), so a plan needs no data.
DATASET_FACTS = {
    "cifar10": (50000, 10000, 10),
    "cifar100": (50000, 10000, 100),
    "celeb_a": (162770, 19867, 1),
    "fashion_mnist": (60000, 10000, 10),
    "mnist": (60000, 10000, 10),
}


# --------------------------------------------------------------- FLOP counting
_EINSUM_REGISTERED = []


def _register_einsum_flops():
    """Give TensorFlow's profiler a count for Einsum (it has none): 2 x the product of
    every index's size for a contraction of two operands (one multiply and one add per
    term), the product for one operand."""
    if _EINSUM_REGISTERED:
        return
    from tensorflow.python.framework import graph_util, ops

    def einsum_flops(graph, node):
        equation = node.attr["equation"].s.decode()
        inputs = equation.split("->")[0].split(",")
        if "." in equation:
            return ops.OpStats("flops", None)
        sizes = {}
        for spec, name in zip(inputs, node.input):
            shape = graph_util.tensor_shape_from_node_def_name(graph, name)
            shape.assert_is_fully_defined()
            sizes.update(zip(spec, shape.as_list()))
        total = math.prod(sizes.values())
        return ops.OpStats("flops", total * (2 if len(inputs) > 1 else 1))

    try:
        ops.RegisterStatistics("Einsum", "flops")(einsum_flops)
    except KeyError:  # registered already (by another copy of this module)
        pass
    _EINSUM_REGISTERED.append(True)


def _batch_matmul_correction(graph) -> int:
    """What TensorFlow's profiler miscounts in ``graph``'s BatchMatMul ops: it reads their
    inner dimension from an attribute ``transpose_a`` they do not have (theirs is
    ``adj_x``), so a product whose first operand is adjoint (the weight gradient of a
    dense layer on [b, n, d] inputs) is counted with k = d instead of n. Returns the
    correct count minus the profiler's."""
    from tensorflow.python.framework import graph_util

    correction = 0
    for op in graph.get_operations():
        if op.type not in ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"):
            continue
        node = op.node_def
        if not node.attr["adj_x"].b:
            continue
        a = graph_util.tensor_shape_from_node_def_name(graph, node.input[0])
        out = graph_util.tensor_shape_from_node_def_name(graph, node.name)
        if not (a.is_fully_defined() and out.is_fully_defined()):
            continue
        correction += 2 * out.num_elements() * (int(a[-2]) - int(a[-1]))
    return correction


def graph_flops(graph) -> int:
    """Float operations of a graph, by TensorFlow's profiler (ops it has a count for),
    its BatchMatMul miscount corrected (:func:`_batch_matmul_correction`)."""
    import tensorflow as tf

    _register_einsum_flops()
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    counted = int(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)
    return counted + _batch_matmul_correction(graph)


def _function_graph(graph, name):
    """The FuncGraph of the function ``name`` called from ``graph`` (or a graph it is in)."""
    while graph is not None:
        functions = getattr(graph, "_functions", {})
        if name in functions:
            return functions[name].graph
        graph = getattr(graph, "outer_graph", None)
    return None


def nested_graph_flops(graph, then_weight: float = 0.5) -> float:
    """Float operations of ``graph`` including the functions it calls: a function call's
    body once, a ``tf.cond``'s branches weighted ``then_weight`` and 1 - ``then_weight``
    (the profiler alone does not look inside them). Loops are not followed (no train step
    has one)."""
    total = float(graph_flops(graph))
    for op in graph.get_operations():
        if op.type in ("If", "StatelessIf"):
            then = _function_graph(graph, op.get_attr("then_branch").name)
            other = _function_graph(graph, op.get_attr("else_branch").name)
            total += (then_weight * nested_graph_flops(then, then_weight)
                      + (1 - then_weight) * nested_graph_flops(other, then_weight))
        elif op.type in ("PartitionedCall", "StatefulPartitionedCall"):
            body = _function_graph(graph, op.get_attr("f").name)
            if body is not None:
                total += nested_graph_flops(body, then_weight)
    return total


def forward_flops(net, inputs) -> int:
    """Float operations of one forward pass of ``net`` on ``inputs`` (a list of tensors
    of batch 1), counted on the traced graph."""
    import tensorflow as tf

    specs = [tf.TensorSpec(x.shape, x.dtype) for x in inputs]
    fn = tf.function(lambda *xs: net(list(xs) if len(xs) > 1 else xs[0], training=False),
                     autograph=False)
    return graph_flops(fn.get_concrete_function(*specs).graph)


# --------------------------------------------------------------- memory
def _process_stat(key):
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class MemoryMeter:
    """The bytes allocated now, to measure what a block holds.

    On a GPU (or a CPU allocator that keeps statistics: ``TF_CPU_ALLOCATOR_USE_BFC=true``)
    TensorFlow's allocator statistics (``tf.config.experimental.get_memory_info``:
    ``current``, ``peak``); else the resident set (Linux VmRSS, VmHWM), which also sees
    what the allocator keeps after freeing it (a rough fallback).
    """

    def __init__(self):
        import tensorflow as tf

        self.device = "GPU:0" if tf.config.list_logical_devices("GPU") else "CPU:0"
        self.method = None
        self.allocator = False
        try:
            tf.config.experimental.get_memory_info(self.device)
            self.allocator = True
            self.method = (f"TensorFlow's allocator statistics on {self.device} "
                           f"(tf.config.experimental.get_memory_info)")
        except (ValueError, RuntimeError):
            if _process_stat("VmRSS") is not None:
                self.method = "resident set growth (Linux VmRSS; a rough fallback)"

    def current(self) -> typing.Optional[int]:
        import tensorflow as tf

        if self.allocator:
            return int(tf.config.experimental.get_memory_info(self.device)["current"])
        return _process_stat("VmRSS")

    def reset_peak(self) -> None:
        import tensorflow as tf

        if self.allocator:
            tf.config.experimental.reset_memory_stats(self.device)
        elif os.path.exists("/proc/self/clear_refs"):
            with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
                f.write("5")

    def peak(self) -> typing.Optional[int]:
        import tensorflow as tf

        if self.allocator:
            return int(tf.config.experimental.get_memory_info(self.device)["peak"])
        return _process_stat("VmHWM")


def _nbytes(v) -> int:
    import tensorflow as tf

    return int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size


# --------------------------------------------------------------- step accounts
@dataclasses.dataclass(frozen=True)
class Net:
    """A network a stage's step runs: ``get(model)``; its example inputs at batch b
    (``inputs(model, b)``; None: random tensors of its Functional inputs' shapes, integer
    inputs zero); ``trains``: the stage updates its weights (else only input gradients
    flow through it, or none); ``memory``: measure its activations (False: a network the
    steps never differentiate, e.g. one that makes features once per fit)."""
    name: str
    get: typing.Callable
    inputs: typing.Optional[typing.Callable] = None
    trains: bool = True
    memory: bool = True


@dataclasses.dataclass
class Account:
    """What one step of a stage runs, in forward-pass equivalents per image of its batch.

    nets: the networks (name -> Net). train: name -> forward-pass equivalents per image of
    one step (a forward 1, a backward 2 with weight gradients, 1 with input gradients
    only). alive: name -> activation sets the step holds at its peak (memory). evaluate:
    a validation step's passes per held-out image. sample: passes per generated image (the
    final stage) or per reconstructed image (a first stage). one_off: name -> passes per
    training image once per fit (features a frozen stage makes of every image). extra:
    FLOPs per image beyond the networks (batch statistics), in training and evaluation.
    steps: what one step runs, in words (plan.md).
    """
    nets: dict
    train: dict
    alive: dict
    evaluate: dict
    sample: dict
    one_off: dict = dataclasses.field(default_factory=dict)
    extra_train: float = 0.0
    extra_evaluate: float = 0.0
    steps: str = ""


def _functional_inputs(net, b):
    import tensorflow as tf

    out = []
    for i, spec in enumerate(net.inputs):
        shape = [b, *[int(d) for d in spec.shape[1:]]]
        if "int" in str(spec.dtype):
            out.append(tf.zeros(shape, tf.int32))
        else:
            out.append(tf.random.stateless_normal(shape, [i, 7]))
    return out


def _gan(model, config) -> Account:
    from models.gan.losses import LOSSES

    k = int(config.critic_steps())
    gp = 1 if LOSSES.resolve(config.loss).penalty is not None else 0
    r1 = 6.0 / config.d_reg_every if config.r1_gamma > 0 else 0.0
    nets = {"mapping": Net("mapping", lambda m: m.mapping),
            "synthesis": Net("synthesis", lambda m: m.synthesis),
            "discriminator": Net("discriminator", lambda m: m.discriminator)}
    g = k * 1 + 3
    d = k * (6 + 6 * gp) + 2 + r1
    steps = (f"{k} critic step(s), each: G forward (1 G), D forward on reals and fakes and "
             f"their backward (6 D)")
    if gp:
        steps += (", the gradient penalty: D forward on interpolates, its input gradient and "
                  "the double backprop (6 D)")
    if r1:
        steps += f"; lazy R1 every {config.d_reg_every} steps (6 D / {config.d_reg_every})"
    steps += "; the G step: G forward and backward (3 G), D forward and input gradient (2 D)"
    return Account(
        nets=nets, train={"mapping": g, "synthesis": g, "discriminator": d},
        # the critic step's peak: D on reals and fakes (and the penalty's interpolates,
        # whose double backprop keeps D's forward and backward activations)
        alive={"mapping": 1, "synthesis": 1, "discriminator": 2 + 2 * gp},
        evaluate={"mapping": 1, "synthesis": 1, "discriminator": 2},
        sample={"mapping": 1, "synthesis": 1},
        steps=steps)


def _vae(model, config) -> Account:
    from models.vae.losses import LOSSES, spans_batch

    nets = {"encoder": Net("encoder", lambda m: m.encoder),
            "decoder": Net("decoder", lambda m: m.decoder)}
    # MMD (InfoVAE, WAE): three kernel matrices of the global batch, each B x B distances
    # of z-vectors (2 B z FLOPs per image), with their backward (x3)
    mmd = 6.0 * config.batch_size * config.latent_size if spans_batch(
        LOSSES.resolve(config.loss)) else 0.0
    return Account(nets=nets, train={"encoder": 3, "decoder": 3},
                   alive={"encoder": 1, "decoder": 1},
                   evaluate={"encoder": 1, "decoder": 1}, sample={"decoder": 1},
                   extra_train=3 * mmd, extra_evaluate=mmd,
                   steps="encoder and decoder forward and backward (3 E + 3 D)"
                         + (", the MMD of the batch's latents" if mmd else ""))


def _autoencoder(model, config) -> Account:
    nets = {"encoder": Net("encoder", lambda m: m.encoder),
            "decoder": Net("decoder", lambda m: m.decoder)}
    return Account(nets=nets, train={"encoder": 3, "decoder": 3},
                   alive={"encoder": 1, "decoder": 1},
                   evaluate={"encoder": 1, "decoder": 1},
                   sample={"encoder": 1, "decoder": 1},
                   steps="encoder and decoder forward and backward (3 E + 3 D)")


def _denoiser(model, config) -> Account:
    nets = {"unet": Net("unet", lambda m: m.unet)}
    passes = 1 if config.guidance_scale in (0.0, 1.0) else 2
    steps = config.timesteps if config.sampler == "ddpm" else config.sampling_steps
    one_off, sample = {}, {"unet": passes * steps}
    if model.has_autoencoder:
        nets["ae_encoder"] = Net("ae_encoder", lambda m: m.autoencoder.encoder, trains=False,
                                 memory=False)
        nets["ae_decoder"] = Net("ae_decoder", lambda m: m.autoencoder.decoder, trains=False,
                                 memory=False)
        one_off = {"ae_encoder": 1}
        sample["ae_decoder"] = 1
    return Account(nets=nets, train={"unet": 3}, alive={"unet": 1}, evaluate={"unet": 1},
                   sample=sample, one_off=one_off,
                   steps=f"U-Net forward and backward on the latents (3 U); the frozen "
                         f"encoder's moments once per fit; sampling: {steps} "
                         f"{config.sampler.upper()} steps x {passes} U-Net pass(es)")


def _tokenizer(model, config) -> Account:
    nets = {"encoder": Net("encoder", lambda m: m.encoder),
            "decoder": Net("decoder", lambda m: m.decoder)}
    grid = int(np.prod(model.grid))
    # nearest codes: grid x K distances of D-vectors (2 K D FLOPs each), no gradient
    quantise = 2.0 * grid * model.num_codes * model.code_dim
    return Account(nets=nets, train={"encoder": 3, "decoder": 3},
                   alive={"encoder": 1, "decoder": 1},
                   evaluate={"encoder": 1, "decoder": 1},
                   sample={"encoder": 1, "decoder": 1},
                   extra_train=quantise, extra_evaluate=quantise,
                   steps="encoder and decoder forward and backward (3 E + 3 D), the "
                         "nearest-code search")


def _prior(model, config) -> Account:
    from models.autoregressive.losses import LOSSES, needs_images

    n = int(model.num_tokens)

    def prior_inputs(m, b):
        import tensorflow as tf
        return [tf.zeros([b], tf.int32), tf.zeros([b, n - 1], tf.int32)]

    nets = {"prior": Net("prior", lambda m: m.prior, inputs=prior_inputs),
            "vq_encoder": Net("vq_encoder", lambda m: m.tokenizer.encoder, trains=False,
                              memory=False),
            "vq_decoder": Net("vq_decoder", lambda m: m.tokenizer.decoder, trains=False),
            # the perceptual loss's feature network (measured for every loss: one build
            # serves every loss row)
            "features": Net("features", lambda m: m.tokenizer.feature_net, trains=False)}
    quantise = 2.0 * n * model.num_codes * model.code_dim
    guided = 2 if config.guidance_scale != 1.0 else 1
    account = Account(nets=nets, train={"prior": 3}, alive={"prior": 1},
                      evaluate={"prior": 1}, sample={"prior": guided, "vq_decoder": 1},
                      steps=f"transformer forward and backward over the {n} tokens (3 P)")
    if needs_images(LOSSES.resolve(config.loss)):
        # tokens of the images (E), the soft reconstruction decoded with its input
        # gradient (2 D), the features of it (forward and input gradient) and of the
        # images (3 F), the expected code vectors (einsum n x K x D, x3)
        account.train.update(vq_encoder=1, vq_decoder=2, features=3)
        account.alive.update(vq_decoder=1, features=1)
        account.evaluate.update(vq_encoder=1, vq_decoder=1, features=2)
        account.extra_train = quantise + 3 * quantise
        account.extra_evaluate = 2 * quantise
        account.steps += (", the images' tokens (1 E), the soft reconstruction decoded and "
                          "differentiated (2 D), its features and the images' (3 F)")
    else:
        account.one_off = {"vq_encoder": 1}
        account.extra_train = 0.0
        account.steps += "; the codes once per fit (1 E)"
    return account


#: (family, stage) -> account(model, config): what one step of that stage runs
ACCOUNTS = {
    ("gan", "model"): _gan,
    ("vae", "model"): _vae,
    ("diffusion", "autoencoder"): _autoencoder,
    ("diffusion", "denoiser"): _denoiser,
    ("autoregressive", "tokenizer"): _tokenizer,
    ("autoregressive", "prior"): _prior,
}


# --------------------------------------------------------------- measuring a stage
@dataclasses.dataclass
class NetCost:
    """One network, measured: parameters, forward FLOPs per image (profiler), activation
    bytes per example (measured; None when the step never differentiates it), and the
    seconds and FLOPs of the measured forward and backward pass (this machine's rate)."""
    params: int
    flops: int
    activation_bytes: typing.Optional[float] = None
    measured_seconds: float = 0.0
    measured_flops: float = 0.0


@dataclasses.dataclass
class StageCost:
    """A stage's model built once and measured: its account and every network's cost
    (``for_config`` gives the account of another row sharing the networks)."""
    account: Account
    facts: object
    nets: dict
    params: int
    trainable_params: int
    state_bytes: int
    memory_method: typing.Optional[str]
    family: str = ""
    stage: str = ""
    config: object = None

    def for_config(self, family_name, stage_name, config) -> "StageCost":
        """The same networks under another row's config (its loss, critic steps, sampler)."""
        account = ACCOUNTS[(family_name, stage_name)](self.facts, config)
        return dataclasses.replace(self, account=account)

    def forward_flops(self) -> float:
        """Forward FLOPs per image of the networks the stage trains."""
        return float(sum(self.nets[n].flops for n, net in self.account.nets.items()
                         if net.trains))

    def train_flops(self) -> float:
        """FLOPs of one training step per image of its batch."""
        return float(sum(self.nets[n].flops * k for n, k in self.account.train.items())
                     + self.account.extra_train)

    def evaluate_flops(self) -> float:
        return float(sum(self.nets[n].flops * k for n, k in self.account.evaluate.items())
                     + self.account.extra_evaluate)

    def sample_flops(self) -> float:
        return float(sum(self.nets[n].flops * k for n, k in self.account.sample.items()))

    def one_off_flops(self) -> float:
        return float(sum(self.nets[n].flops * k for n, k in self.account.one_off.items()))

    def activation_bytes(self) -> typing.Optional[float]:
        """Activation bytes per example of one step (float32), or None if unmeasured."""
        values = [self.nets[n].activation_bytes for n in self.account.alive]
        if any(v is None for v in values):
            return None
        return float(sum(self.nets[n].activation_bytes * k
                         for n, k in self.account.alive.items()))

    def rate(self) -> typing.Optional[float]:
        """This machine's FLOP/s in the measured forward and backward passes."""
        seconds = sum(c.measured_seconds for c in self.nets.values())
        flops = sum(c.measured_flops for c in self.nets.values())
        return flops / seconds if seconds > 0 else None


def _measure_net(net, make, batch, meter):
    """(activation bytes per example or None, seconds, images) of ``net``: the allocator's
    peak during a compiled forward and backward pass (``tf.function``, as the trainer runs
    steps) above what was allocated before it, at batches ``batch // 4`` (at least 1) and
    ``batch`` (at least 4), their difference per image (the peak varies by a few MB from
    run to run with the order the executor runs ops in: the wider the gap, the smaller
    its share). The backward differentiates the summed outputs
    with respect to the network's float inputs (its weights when it has none): without
    the weight gradients, whose fixed-size buffers set the peak of small batches, the peak
    is the activations the pass keeps for its backward plus one layer's transients, linear
    in the batch, and what does not grow with it cancels. The time is the larger pass's."""
    import tensorflow as tf

    probe = make(1)
    floats = [i for i, x in enumerate(probe) if x.dtype.is_floating]
    weights = [] if floats else list(net.trainable_variables)

    def pass_(*inputs):
        watched = [inputs[i] for i in floats]
        with tf.GradientTape() as tape:
            tape.watch(watched)
            out = net(list(inputs) if len(inputs) > 1 else inputs[0], training=True)
            loss = tf.add_n([tf.reduce_sum(tf.cast(o, tf.float32))
                             for o in tf.nest.flatten(out)])
        grads = tape.gradient(loss, watched + weights)
        return tf.add_n([tf.reduce_sum(tf.cast(g, tf.float32)) for g in grads
                         if g is not None] + [loss])

    specs = [tf.TensorSpec([None, *x.shape[1:]], x.dtype) for x in probe]
    compiled = tf.function(pass_, input_signature=specs, autograph=False)

    def peak(inputs):
        before = meter.current() if meter is not None else None
        if meter is not None:
            meter.reset_peak()
        t0 = time.perf_counter()
        compiled(*inputs).numpy()
        seconds = time.perf_counter() - t0
        top = meter.peak() if meter is not None else None
        return (None if top is None or before is None else top - before), seconds

    small, big = max(1, batch // 4), max(4, batch)
    small_inputs = make(small)
    peak(small_inputs)  # traces, builds the kernels
    low, _ = peak(small_inputs)
    high, seconds = peak(make(big))
    if low is None or high is None:
        return None, seconds, big
    return max(high - low, 0) / (big - small), seconds, big


#: a memory run's batch: the largest power of two (4 to 64) whose forward and backward
#: pass stays under this many FLOPs
MEASURE_FLOPS = 4e9


def _measure_batch(flops) -> int:
    batch = 4
    while batch < 64 and 2 * 2 * batch * flops <= MEASURE_FLOPS:
        batch *= 2
    return batch


def model_facts(model):
    """What the accounts read of a stage's model besides its networks (kept after the
    model is dropped, for the other rows that share its networks)."""
    tokenizer = getattr(model, "tokenizer", None)
    return types.SimpleNamespace(
        has_autoencoder=getattr(model, "autoencoder", None) is not None,
        grid=getattr(model, "grid", None), num_codes=getattr(model, "num_codes", None),
        code_dim=getattr(model, "code_dim", getattr(tokenizer, "code_dim", None)),
        num_tokens=getattr(model, "num_tokens", None))


def measure_stage(model, config, family_name, stage_name, *, memory: bool = True,
                  meter=None, flops_cache=None, keep=False) -> StageCost:
    """Measure ``model`` (a stage's model, built, its optimisers built): every network of
    its account, its state. ``flops_cache``: id -> (network, forward FLOPs) of networks
    counted before (a first stage's, run frozen by the next); ``keep``: add this stage's
    (a first stage, whose model stays alive)."""
    facts = model_facts(model)
    account = ACCOUNTS[(family_name, stage_name)](facts, config)
    meter = meter if meter is not None else (MemoryMeter() if memory else None)
    nets = {}
    for name, spec in account.nets.items():
        net = spec.get(model)
        make = spec.inputs or (lambda m, b, net=net: _functional_inputs(net, b))
        known = flops_cache.get(id(net)) if flops_cache is not None else None
        if known is not None and known[0] is net:  # an earlier stage's network, counted
            flops = known[1]
        else:
            flops = forward_flops(net, make(model, 1))
            if flops_cache is not None and keep:
                flops_cache[id(net)] = (net, flops)
        cost = NetCost(params=int(net.count_params()), flops=flops)
        if memory and spec.memory and (name in account.alive or not spec.trains):
            act, seconds, images = _measure_net(net, lambda b: make(model, b),
                                                _measure_batch(flops), meter)
            cost.activation_bytes = act
            cost.measured_seconds = seconds
            cost.measured_flops = 2 * flops * images  # a forward and an input backward
        nets[name] = cost
    import keras

    optimizers = [o for o in model.checkpoint_objects().values()
                  if isinstance(o, keras.optimizers.Optimizer)]
    opt_bytes = sum(_nbytes(v) for o in optimizers for v in o.variables)
    state = (sum(_nbytes(v) for v in model.variables) + opt_bytes
             + sum(_nbytes(v) for v in model.trainable_variables))
    return StageCost(account=account, facts=facts, nets=nets, family=family_name,
                     stage=stage_name, config=config, params=int(model.count_params()),
                     trainable_params=int(sum(int(np.prod(v.shape))
                                              for v in model.trainable_variables)),
                     state_bytes=int(state),
                     memory_method=meter.method if meter is not None else None)


# --------------------------------------------------------------- the plan
@dataclasses.dataclass
class Line:
    """One row of the plan: a run's final stage (``kind`` "run") or a shared first stage
    ("stage", listed once however many runs share it)."""
    name: str
    kind: str
    family: str
    stage: str
    cost: StageCost
    batch: int
    batches_per_step: int
    epochs: int
    steps_per_epoch: int
    steps: int
    train_images: int
    n_samples: int
    flops: dict  # train, validation, one_off, sampling, metrics, total
    memory: dict  # per precision: activations and peak bytes at the batch
    devices: dict  # accelerator key -> {precision, hours, peak_gb, fits, fix}
    this_machine: dict


def _steps(plan, train_images, batch, batches_per_step, max_steps):
    """(epochs, steps per epoch, total steps) the trainer runs for ``plan``'s stage."""
    cfg = plan.train_config
    full = train_images // (batch * batches_per_step)
    per_epoch = full if cfg.steps_per_epoch is None else min(int(cfg.steps_per_epoch), full)
    total = cfg.epochs * per_epoch
    if max_steps is not None:
        total = min(total, int(max_steps))
    return cfg.epochs, per_epoch, total


def _accumulation(batch, state, activations, usable):
    """The smallest k dividing ``batch`` with state + activations x batch / k <= usable,
    or None."""
    for k in range(1, batch + 1):
        if batch % k == 0 and state + activations * batch / k <= usable:
            return k
    return None


def _device_figures(cost, batch, total_flops, precision, accelerator, accumulate=1):
    """Hours, peak memory, whether it fits and what fixes it, of a stage on ``accelerator``
    in ``precision``; ``cost``: its ``state_bytes`` and ``activation_bytes()`` per example;
    ``accumulate``: micro-batches per update asked for (only one is alive at a time)."""
    act = cost.activation_bytes()
    half = precision in HALF
    usable = USABLE_MEMORY * accelerator.memory_gb * GB
    out = {"precision": precision,
           "hours": total_flops / (accelerator.peak_for(precision) * UTILISATION) / 3600.0}
    if act is None:
        out.update(peak_gb=None, fits=None, fix="activations not measured")
        return out
    act_p = act * (0.5 if half else 1.0)
    peak = cost.state_bytes + act_p * batch / accumulate
    out["peak_gb"] = peak / GB
    out["fits"] = peak <= usable
    fix = ""
    if not out["fits"]:
        fixes = []
        k = _accumulation(batch, cost.state_bytes, act_p, usable)
        if k is not None:
            fixes.append(f"--accumulate {k}")
        if not half and accelerator.compute_capability >= (5, 3):
            k_half = _accumulation(batch, cost.state_bytes, act * 0.5, usable)
            if k_half is not None:
                half_name = "bfloat16" if accelerator.compute_capability >= (8, 0) else "float16"
                fixes.append(f"--precision {half_name}"
                             + (f" --accumulate {k_half}" if k_half > 1 else ""))
        if not fixes:
            fix = (f"the state alone needs {cost.state_bytes / GB:.1f} GB: a larger "
                   f"accelerator or more replicas")
        else:
            fix = " or ".join(fixes)
    out["fix"] = fix
    return out


#: the optimiser step's temporaries where no rehearsal measured them, in gradients' bytes
#: (the paper rehearsal on a CPU measured 0 to 3.6 x: ``Calibration``)
DEFAULT_TRANSIENT = 3.0


class Calibration:
    """What ``benchmarks/rehearse.py`` measured on the real train steps, applied to the
    plan: a stage it rehearsed (same networks, same loss) takes its measured activations
    per example; another stage of a rehearsed family and stage takes the composed figure
    times the rehearsal's ratio measured / composed for it; the step's temporaries beyond
    the gradients (the optimiser update's) take the rehearsal's, in gradients' bytes."""

    def __init__(self, record):
        self.exact, self.ratios, self.transients = {}, {}, {}
        self.source = None
        for stage in (record or {}).get("stages", []):
            measured = stage.get("activation_bytes_per_example_measured")
            planned = stage.get("activation_bytes_per_example_planned")
            where = (stage.get("family"), stage.get("stage"))
            if not measured or not stage.get("activation_reliable"):
                continue
            self.source = (f"benchmarks/rehearse.py, {record.get('date', '?')}, "
                           f"{record.get('machine', '?')}")
            if stage.get("key"):
                self.exact[(stage["key"], stage.get("loss"))] = (measured, stage.get("name"),
                                                                 planned)
            if planned:
                self.ratios.setdefault(where, []).append(measured / planned)
            grads, fixed = stage.get("gradient_bytes"), stage.get("fixed_step_bytes_measured")
            if grads and fixed is not None:
                self.transients.setdefault(where, []).append(max(fixed - grads, 0) / grads)

    def activations(self, key, loss, where, composed, composed_for=None):
        """(activation bytes per example, how obtained); ``composed_for(loss)``: the
        plan's composed figure of the same networks under another loss."""
        # a row's final stage: its own loss, or another whose step holds the same
        # networks' activations (the same composed figure: MAE beside MSE, not WGAN-GP
        # beside hinge); a shared first stage (``loss`` None): whichever row trained it
        def same_step(other):
            if composed_for is None or not composed:
                return False
            theirs = composed_for(other)
            return bool(theirs) and abs(theirs / composed - 1) < 1e-9

        found = [(measured, name) for (k, l), (measured, name, _) in self.exact.items()
                 if k == key and (loss is None or l == loss or same_step(l))]
        if found:
            measured, name = found[0]
            return measured, f"rehearsed ({name})"
        ratios = self.ratios.get(where)
        if composed is not None and ratios:
            ratio = sum(ratios) / len(ratios)
            return composed * ratio, f"composed x {ratio:.2f} (the rehearsal's ratio)"
        return composed, "composed"

    def transient(self, where, gradient_bytes):
        factors = self.transients.get(where)
        factor = sum(factors) / len(factors) if factors else DEFAULT_TRANSIENT
        return factor * gradient_bytes, factor


def _precision_on(accelerator, requested):
    from training.runtime import Device, resolve_precision

    device = Device("GPU", accelerator.name, accelerator.compute_capability)
    try:
        return resolve_precision(requested, [device])[0]
    except ValueError:
        return "float32"


def _build_key(family, stage, config, image_shape):
    """What decides a stage's networks: the config without the loss, the batch and the
    sampler fields (none of them changes a width; the loss changes what a step runs,
    which the account reads from each row's own config)."""
    values = to_jsonable(config)
    for field in ("loss", "batch_size", *family.sampler_fields):
        values.pop(field, None)
    return json.dumps([family.name, stage, list(image_shape), values], sort_keys=True)


class StageCache:
    """Every distinct stage's networks built and measured once (the models of first
    stages are kept: later stages are built on them)."""

    def __init__(self, *, memory: bool = True, progress=None):
        self.memory = memory
        self.meter = None
        self.costs, self.models, self.flops = {}, {}, {}
        self.meter_method = None  # the measuring processes' (prefetch)
        self.progress = progress or (lambda text: None)

    def cost(self, family, stage, config, image_shape, inputs_keys=(), seed=0):
        """(key, StageCost) of ``stage`` (a models.Stage) under ``config``."""
        import keras
        import tensorflow as tf

        key = _build_key(family, stage.name, config, image_shape)
        if key not in self.costs:
            started = time.perf_counter()
            inputs = {name: self.models[k] for name, k in inputs_keys}
            batch = int(getattr(config, stage.batch_field))
            keras.utils.set_random_seed(seed)
            model = stage.build(config, image_shape, batch, seed=seed, inputs=inputs)
            model(tf.zeros([1, *image_shape]))
            model.build_optimizers()
            if self.memory and self.meter is None:
                self.meter = MemoryMeter()
            first = stage is not family.final_stage
            cost = measure_stage(model, config, family.name, stage.name, memory=self.memory,
                                 meter=self.meter, flops_cache=self.flops, keep=first)
            self.costs[key] = cost
            if stage is not family.final_stage:
                self.models[key] = model
            self.progress(f"[plan] measured {family.name} {stage.name} "
                          f"({cost.params / 1e6:.1f}M parameters) in "
                          f"{time.perf_counter() - started:.1f} s")
        return key, self.costs[key].for_config(family.name, stage.name, config)

    def prefetch(self, chains, workers: int = 2) -> None:
        """Measure ``chains`` (lists of :func:`_stage_spec` dicts, each a family's stages
        in order) in ``workers`` child processes at once (building networks is Python,
        one core each), filling the cache; a chain a worker could not measure is left to
        :meth:`cost` (built here)."""
        import subprocess
        import sys
        import tempfile

        weights = {"denoiser": 25, "prior": 11, "model": 7, "autoencoder": 5, "tokenizer": 4}
        groups = [[] for _ in range(workers)]
        loads = [0.0] * workers
        for chain in sorted(chains, key=lambda c: -sum(weights.get(s["stage"], 3) for s in c)):
            i = loads.index(min(loads))
            groups[i].append(chain)
            loads[i] += sum(weights.get(s["stage"], 3) for s in chain)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        folder = tempfile.mkdtemp(prefix="plan-")
        children = []
        for i, group in enumerate(g for g in groups if g):
            spec, out = os.path.join(folder, f"spec{i}.json"), os.path.join(folder, f"out{i}.json")
            artifacts.write_json(spec, {"chains": group, "memory": self.memory})
            children.append((subprocess.Popen(
                [sys.executable, "-m", "experiments.forecast", spec, out], cwd=root,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), out))
        for child, out in children:
            output, _ = child.communicate()
            for line in output.splitlines():
                if line.startswith("[plan]"):
                    self.progress(line)
            if child.returncode != 0 or not os.path.exists(out):
                self.progress(f"[plan] a measuring process failed (status {child.returncode});"
                              f" its stages are measured here: "
                              + (output.strip().splitlines() or [""])[-1][:200])
                continue
            with open(out, encoding="utf-8") as f:
                measured = json.load(f)
            for key, value in measured["costs"].items():
                self.costs[key] = _cost_from_json(value)
            self.meter_method = measured.get("memory_method")


def _stage_spec(family, stage, config, image_shape, key, inputs_keys, seed) -> dict:
    """What a measuring process needs to build one stage (JSON)."""
    return {"family": family.name, "stage": stage.name, "config": to_jsonable(config),
            "image_shape": list(image_shape), "key": key, "seed": int(seed),
            "inputs": [list(pair) for pair in inputs_keys]}


def _cost_to_json(cost: StageCost) -> dict:
    return {"facts": to_jsonable(vars(cost.facts)),
            "nets": {n: dataclasses.asdict(c) for n, c in cost.nets.items()},
            "params": cost.params, "trainable_params": cost.trainable_params,
            "state_bytes": cost.state_bytes, "memory_method": cost.memory_method,
            "family": cost.family, "stage": cost.stage, "config": to_jsonable(cost.config)}


def _cost_from_json(value: dict) -> StageCost:
    from common.config import from_dict
    from models import get_family

    family = get_family(value["family"])
    config = from_dict(family.config_cls, value["config"], where="plan worker")
    facts = types.SimpleNamespace(**value["facts"])
    return StageCost(account=ACCOUNTS[(value["family"], value["stage"])](facts, config),
                     facts=facts, nets={n: NetCost(**c) for n, c in value["nets"].items()},
                     params=value["params"], trainable_params=value["trainable_params"],
                     state_bytes=value["state_bytes"], memory_method=value["memory_method"],
                     family=value["family"], stage=value["stage"], config=config)


def _measure_chains(spec_path, out_path) -> int:
    """A measuring process (:meth:`StageCache.prefetch`): build and measure the stages of
    the chains in ``spec_path``, write their costs to ``out_path``."""
    from common.config import from_dict
    from models import get_family

    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    cache = StageCache(memory=spec["memory"], progress=lambda text: print(text, flush=True))
    costs = {}
    for chain in spec["chains"]:
        for stage_spec in chain:
            family = get_family(stage_spec["family"])
            stage = next(s for s in family.stages if s.name == stage_spec["stage"])
            config = from_dict(family.config_cls, stage_spec["config"], where="plan worker")
            key, _ = cache.cost(family, stage, config, tuple(stage_spec["image_shape"]),
                                tuple(tuple(pair) for pair in stage_spec["inputs"]),
                                seed=stage_spec["seed"])
            if key != stage_spec["key"]:  # the JSON round trip changed the config
                cache.costs[stage_spec["key"]] = cache.costs[key]
                cache.models.update({stage_spec["key"]: cache.models[key]}
                                    if key in cache.models else {})
            costs[stage_spec["key"]] = _cost_to_json(cache.costs[key])
    artifacts.write_json(out_path, {"costs": costs, "memory_method": cache.meter.method
                                    if cache.meter is not None else None})
    return 0


def metric_flops_per_image(network: str, image_shape, num_classes) -> tuple:
    """(FLOPs per scored image, what they are) of the metric network ``network``."""
    if network == "inception":
        return INCEPTION_FLOPS, (f"FID Inception-v3: {INCEPTION_FLOPS / 1e9:.2f} GFLOP per "
                                 f"image ({INCEPTION_SOURCE})")
    if network == "evaluator":
        from metrics.evaluator import build_evaluator

        net = build_evaluator(tuple(image_shape), int(num_classes))
        import tensorflow as tf
        flops = forward_flops(net, [tf.zeros([1, *image_shape])])
        return float(flops), f"the suite's evaluator: {flops / 1e6:.1f} MFLOP (profiler)"
    return 0.0, "not scored (--metrics none)"


def matmul_peak(n: int = 2048, reps: int = 5) -> float:
    """This machine's FLOP/s in a large float32 matmul (the reference of its utilisation)."""
    import tensorflow as tf

    a = tf.random.stateless_normal([n, n], [0, 1])
    mm = tf.function(lambda x: tf.reduce_sum(tf.matmul(x, x)[:1, :1]))
    mm(a).numpy()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        mm(a).numpy()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


@dataclasses.dataclass
class Forecast:
    lines: list
    header: dict
    totals: dict

    def to_json(self) -> dict:
        rows = []
        for line in self.lines:
            cost = line.cost
            rows.append(to_jsonable({
                "name": line.name, "kind": line.kind, "family": line.family,
                "stage": line.stage, "params": cost.params,
                "trainable_params": cost.trainable_params,
                "forward_flops_per_image": cost.forward_flops(),
                "train_flops_per_image": cost.train_flops(),
                "networks": {n: dataclasses.asdict(c) for n, c in cost.nets.items()},
                "step": cost.account.steps, "batch": line.batch,
                "batches_per_step": line.batches_per_step, "epochs": line.epochs,
                "steps_per_epoch": line.steps_per_epoch, "steps": line.steps,
                "train_images": line.train_images, "n_samples": line.n_samples,
                "flops": line.flops, "state_bytes": cost.state_bytes,
                "activation_bytes_per_example": line.memory["activation_bytes_per_example"],
                "memory": line.memory, "accelerators": line.devices,
                "this_machine": line.this_machine}))
        return {"header": to_jsonable(self.header), "rows": rows,
                "totals": to_jsonable(self.totals)}


def make_forecast(plans, *, profile, train_examples, val_examples, num_classes, image_shape,
                  metric_network="inception", precision="auto", max_steps=None,
                  memory=True, progress=None, title="", accumulate=1,
                  workers=None) -> Forecast:
    """The plan of ``plans`` (``experiments.runner.RunPlan``\\ s) under ``profile``."""
    started = time.perf_counter()
    progress = progress or (lambda text: None)
    cache = StageCache(memory=memory, progress=progress)
    calibration = Calibration(read_rehearsal())
    chains = {}
    for plan in plans:
        keys, chain = [], []
        for part in (*plan.stages, plan):
            spec = plan.family.final_stage if part is plan else part.spec
            key = _build_key(plan.family, spec.name, plan.family_config, image_shape)
            chain.append(_stage_spec(plan.family, spec, plan.family_config, image_shape, key,
                                     tuple(keys), plan.seed))
            keys.append((spec.name, key))
        chains.setdefault(keys[-1][1], chain)
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if len(chains) >= 4 else 1
    if workers > 1:
        cache.prefetch(list(chains.values()), workers)
    metric_per_image, metric_what = metric_flops_per_image(metric_network, image_shape,
                                                           num_classes)
    rate_ref = matmul_peak()
    lines, listed = [], set()
    for plan in plans:
        keys = []
        for part in (*plan.stages, plan):
            final = part is plan
            spec = plan.family.final_stage if final else part.spec
            config = plan.family_config
            key, cost = cache.cost(plan.family, spec, config, image_shape, tuple(keys),
                                   seed=plan.seed)
            keys.append((spec.name, key))
            if part.run_dir in listed:
                continue
            listed.add(part.run_dir)
            batch = int(getattr(config, spec.batch_field))
            k = int(config.batches_per_step()) if final else 1
            train_n = train_examples if profile.train_limit is None else min(
                train_examples, profile.train_limit)
            epochs, per_epoch, steps = _steps(part, train_n, batch, k, max_steps)
            val_n = val_examples if profile.val_limit is None else min(val_examples,
                                                                       profile.val_limit)
            val_batches = val_n // batch
            if part.train_config.val_batches is not None:
                val_batches = min(val_batches, part.train_config.val_batches)
            val_epochs = epochs if max_steps is None else max(
                1, math.ceil(steps / max(per_epoch, 1)))
            n_samples = plan.n_samples
            flops = {
                "train": steps * batch * cost.train_flops(),
                "validation": val_epochs * val_batches * batch * cost.evaluate_flops(),
                "one_off": train_n * cost.one_off_flops(),
                "sampling": n_samples * cost.sample_flops(),
                "metrics": n_samples * metric_per_image,
            }
            flops["total"] = sum(flops.values())
            where = (plan.family.name, spec.name)
            composed = cost.activation_bytes()
            def composed_for(other, cost=cost, spec=spec, config=config):
                try:
                    again = dataclasses.replace(config, loss=other)
                    return cost.for_config(plan.family.name, spec.name,
                                           again).activation_bytes()
                except (ValueError, KeyError, TypeError):
                    return None

            act, act_from = calibration.activations(key, config.loss if final else None,
                                                    where, composed, composed_for)
            grads = 4 * cost.trainable_params
            transient, factor = calibration.transient(where, grads)
            state = cost.state_bytes + transient
            memory_fig = {"activation_bytes_per_example": act, "activations_from": act_from,
                          "activation_bytes_composed": composed,
                          "state_bytes": state, "variables_bytes": cost.state_bytes,
                          "transient_bytes": transient, "transient_factor": factor}
            for p in ("float32", "bfloat16"):
                scale = 0.5 if p in HALF else 1.0
                memory_fig[f"peak_bytes_{p}"] = (None if act is None else
                                                 state + act * scale * batch)
            sized = types.SimpleNamespace(state_bytes=state, activation_bytes=lambda a=act: a)
            devices = {}
            for acc in ACCELERATORS:
                devices[acc.key] = _device_figures(
                    sized, batch, flops["total"], _precision_on(acc, precision), acc,
                    accumulate if batch % accumulate == 0 else 1)
            rate = cost.rate()
            here = {"flops_per_second": rate,
                    "utilisation": None if rate is None else rate / rate_ref}
            lines.append(Line(
                name=part.name, kind="run" if final else "stage", family=plan.family.name,
                stage=spec.name, cost=cost, batch=batch, batches_per_step=k, epochs=epochs,
                steps_per_epoch=per_epoch, steps=steps, train_images=steps * batch * k,
                n_samples=n_samples, flops=flops, memory=memory_fig, devices=devices,
                this_machine=here))
    # This machine's rate: the rehearsal's FLOP/s of the stage's real train step when one
    # was recorded here (benchmarks/rehearse.py), else the memory runs' (compiled forward
    # passes); a stage with neither takes the grid's mean
    rehearsal = read_rehearsal()
    rehearsed = {}
    if rehearsal and rehearsal.get("machine") == _machine_name():
        for stage in rehearsal.get("stages", []):
            if stage.get("flops_per_second"):
                rehearsed[(stage["family"], stage["stage"])] = float(stage["flops_per_second"])
    rates = [line.this_machine["flops_per_second"] for line in lines
             if line.this_machine["flops_per_second"]]
    grid_rate = (sum(rates) / len(rates)) if rates else rate_ref * 0.3
    for line in lines:
        rate = rehearsed.get((line.family, line.stage))
        line.this_machine["rate_from"] = "rehearsal" if rate else "forward passes"
        rate = rate or line.this_machine["flops_per_second"] or grid_rate
        line.this_machine["flops_per_second"] = rate
        line.this_machine["seconds_per_step"] = (line.batch * line.cost.train_flops() / rate)
        line.this_machine["hours"] = line.flops["total"] / rate / 3600.0
    ram = _machine_memory()
    totals = {"flops": sum(line.flops["total"] for line in lines),
              "hours": {acc.key: sum(line.devices[acc.key]["hours"] for line in lines)
                        for acc in ACCELERATORS},
              "not_fitting": {acc.key: [line.name for line in lines
                                        if line.devices[acc.key]["fits"] is False]
                              for acc in ACCELERATORS},
              "this_machine_hours": sum(line.this_machine["hours"] for line in lines),
              "reference_statistics_flops": train_examples * metric_per_image,
              "runs": sum(line.kind == "run" for line in lines),
              "stages": sum(line.kind == "stage" for line in lines)}
    header = {
        "title": title, "profile": profile.name, "precision_requested": precision,
        "accumulate": accumulate,
        "max_steps": max_steps, "utilisation": UTILISATION, "usable_memory": USABLE_MEMORY,
        "accelerators": [dataclasses.asdict(a) for a in ACCELERATORS],
        "metric": metric_what, "metric_network": metric_network,
        "memory_method": (cache.meter.method if cache.meter is not None
                          else cache.meter_method),
        "this_machine": {"description": _machine_name(), "memory_bytes": ram,
                         "matmul_flops_per_second": rate_ref,
                         "flops_per_second": grid_rate,
                         "utilisation": grid_rate / rate_ref},
        "rehearsal": read_rehearsal(),
        "calibration": calibration.source,
        "train_examples": train_examples, "val_examples": val_examples,
        "seconds": None,
    }
    header["seconds"] = round(time.perf_counter() - started, 1)
    return Forecast(lines=lines, header=header, totals=totals)


def _machine_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _machine_name() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPU(s)"


#: where benchmarks/rehearse.py writes its figures (the plan shows them)
REHEARSAL_RECORD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks", "results", "rehearsal.json")


def read_rehearsal(path=REHEARSAL_RECORD):
    """benchmarks/rehearse.py's last record (machine, utilisation, ...), or None."""
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        return record if isinstance(record, dict) else None
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------- writing
def _num(value, digits=1):
    if value is None:
        return "n/a"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10 ** -digits:
        return f"{value:.{digits}f}"
    return f"{value:.1e}"


def _flop(value):
    """FLOPs in PFLOP (10^15)."""
    return _num(value / 1e15, 2)


def _mb(value):
    return _num(None if value is None else value / 1e6, 1)


def _gb(value):
    return _num(None if value is None else value / GB, 1)


def _fits(device):
    if device["fits"] is None:
        return "?"
    return "yes" if device["fits"] else f"**no**: {device['fix']}"


def rehearsal_marker(max_steps) -> str:
    return "" if max_steps is None else f"REHEARSAL ({max_steps} step(s) per stage): "


def short_table(forecast: Forecast) -> list:
    """The printed table: one line per run or shared stage, then the totals."""
    accs = ACCELERATORS
    head = (f"{'run / stage':44s} {'PFLOP':>9s} {'act MB/img':>10s} {'peak GB':>8s} "
            + " ".join(f"{a.short + ' h':>9s}" for a in accs)
            + f" {'this CPU h':>10s}  fits")
    lines = [head, "-" * len(head)]
    for line in forecast.lines:
        peak = line.devices[accs[0].key]["peak_gb"]
        fits = ", ".join(f"{a.short} {'ok' if line.devices[a.key]['fits'] else 'NO'}"
                         for a in accs if line.devices[a.key]["fits"] is not None)
        name = line.name if line.kind == "run" else f"{line.name} (shared)"
        lines.append(f"{name:44s} {_flop(line.flops['total']):>9s} "
                     f"{_mb(line.memory['activation_bytes_per_example']):>10s} {_num(peak):>8s} "
                     + " ".join(f"{_num(line.devices[a.key]['hours']):>9s}" for a in accs)
                     + f" {_num(line.this_machine['hours']):>10s}  {fits}")
    t = forecast.totals
    lines.append("-" * len(head))
    lines.append(f"{'total (' + str(t['runs']) + ' runs, ' + str(t['stages']) + ' stages)':44s} "
                 f"{_flop(t['flops']):>9s} {'':>10s} {'':>8s} "
                 + " ".join(f"{_num(t['hours'][a.key]):>9s}" for a in accs)
                 + f" {_num(t['this_machine_hours']):>10s}")
    return lines


def markdown(forecast: Forecast) -> str:
    """plan.md: the tables, the totals and how every figure was obtained."""
    h, t = forecast.header, forecast.totals
    accs = ACCELERATORS
    marker = rehearsal_marker(h["max_steps"])
    here = h["this_machine"]
    picks = ", ".join(f"{a.name}: {_precision_on(a, h['precision_requested'])}" for a in accs)
    out = [f"# {marker}Plan: {h['title'] or 'run_all.py --plan'}", "",
           f"Profile `{h['profile']}`; {h['train_examples']} training and {h['val_examples']} "
           f"held-out images; precision `{h['precision_requested']}` (per accelerator below). "
           f"Nothing was trained. Written by `run_all.py --plan` in {h['seconds']} s.", ""]
    if h["max_steps"] is not None:
        out += [f"**REHEARSAL**: every stage stops after {h['max_steps']} step(s) "
                f"(`--max-steps`); these runs are never results.", ""]
    out += ["## Work per run and stage", "",
            "| run / stage | params (M) | forward GFLOP/img | step GFLOP/img | batch | steps "
            "| images | train PFLOP | val + one-off PFLOP | sampling + metric PFLOP "
            "| total PFLOP |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for line in forecast.lines:
        f = line.flops
        batch = f"{line.batch}" + (f" x {line.batches_per_step}"
                                   if line.batches_per_step > 1 else "")
        name = line.name if line.kind == "run" else f"{line.name} (shared stage)"
        out.append(f"| {name} | {_num(line.cost.params / 1e6)} "
                   f"| {_num(line.cost.forward_flops() / 1e9, 3)} "
                   f"| {_num(line.cost.train_flops() / 1e9, 2)} | {batch} "
                   f"| {line.steps:,} | {line.train_images:,} | {_flop(f['train'])} "
                   f"| {_flop(f['validation'] + f['one_off'])} "
                   f"| {_flop(f['sampling'] + f['metrics'])} | {_flop(f['total'])} |")
    out += ["", "## Memory and hours", "",
            f"Peak memory at the profile's batch on one device = state + activations per "
            f"image x batch (activations halved in bfloat16/float16). Hours at "
            f"{UTILISATION:.0%} of the data-sheet peak for the precision "
            f"`training.runtime.resolve_precision('{h['precision_requested']}')` picks on "
            f"each accelerator ({picks}). "
            f"A run fits when its peak is at most {USABLE_MEMORY:.0%} of the device's memory.",
            "",
            "| run / stage | act. MB/img | act. from | state GB | peak GB fp32 | peak GB 16-bit | "
            + " | ".join(f"{a.name} h" for a in accs) + " | this machine s/step | this machine h |",
            "|---|---:|---|---:|---:|---:|" + "---:|" * len(accs) + "---:|---:|"]
    for line in forecast.lines:
        m = line.memory
        name = line.name if line.kind == "run" else f"{line.name} (shared stage)"
        out.append(f"| {name} | {_mb(m['activation_bytes_per_example'])} "
                   f"| {m['activations_from']} | {_gb(m['state_bytes'])} "
                   f"| {_gb(m['peak_bytes_float32'])} | {_gb(m['peak_bytes_bfloat16'])} | "
                   + " | ".join(_num(line.devices[a.key]["hours"]) for a in accs)
                   + f" | {_num(line.this_machine['seconds_per_step'])} "
                   f"| {_num(line.this_machine['hours'])} |")
    out += ["", "## Fits in memory", "",
            "| run / stage | " + " | ".join(a.name for a in accs) + " |",
            "|---|" + "---|" * len(accs)]
    for line in forecast.lines:
        name = line.name if line.kind == "run" else f"{line.name} (shared stage)"
        out.append(f"| {name} | " + " | ".join(
            f"{_num(line.devices[a.key]['peak_gb'])} GB ({line.devices[a.key]['precision']}): "
            f"{_fits(line.devices[a.key])}" for a in accs) + " |")
    out += ["", "## Totals", "",
            f"- {t['runs']} run(s) and {t['stages']} shared stage(s): "
            f"{_flop(t['flops'])} PFLOP ({t['flops']:.2e} FLOP), plus the FID reference "
            f"statistics once per dataset ({_flop(t['reference_statistics_flops'])} PFLOP).",
            "- Hours of the whole selection, one device: "
            + "; ".join(f"{a.name} {_num(t['hours'][a.key])} h "
                        f"({_num(t['hours'][a.key] / max(t['runs'], 1))} h per run)"
                        for a in accs)
            + f"; this machine {_num(t['this_machine_hours'])} h.",
            "- Not fitting at the profile's batch: "
            + "; ".join(f"{a.name}: {len(t['not_fitting'][a.key])}" for a in accs) + ".",
            "", "## Each step, as counted", ""]
    seen = set()
    for line in forecast.lines:
        label = f"{line.family} {line.stage}"
        text = line.cost.account.steps
        if (label, text) in seen:
            continue
        seen.add((label, text))
        nets = ", ".join(f"{n} {c.flops / 1e9:.3g} GFLOP" for n, c in line.cost.nets.items())
        out.append(f"- **{label}** ({line.name}): {text}. Forward per image: {nets}.")
    reh = h.get("rehearsal")
    out += ["", "## Method", "",
            "- Forward FLOPs: TensorFlow's profiler (`tf.compat.v1.profiler.profile` with "
            "`ProfileOptionBuilder.float_operation()`) on the graph of each network's forward "
            "pass at batch 1 (a concrete function); Einsum counted as 2 x the product of its "
            "index sizes (the profiler has no count for it).",
            "- One step: the passes listed above, a backward pass costing 2 x its forward (input "
            "and weight gradients) or 1 x (input gradients only); `benchmarks/rehearse.py` "
            "compares this with the profiler's count of the whole traced train step.",
            f"- Activations: measured on this machine ({here['description']}), at full "
            f"width: the peak of a compiled forward and backward pass of each network (its "
            f"summed outputs differentiated with respect to its inputs; "
            f"{h['memory_method'] or 'not measured: no allocator statistics'}) at two batches "
            f"(b/4 and b, b a power of two from 4 to 64 keeping the pass under "
            f"{MEASURE_FLOPS / 1e9:.0f} GFLOP), its growth per image; summed over the "
            f"networks whose activations a step holds at once (above), extrapolated "
            f"linearly to the batch. What does not grow with the batch (the optimiser's "
            f"temporaries) is covered by planning at most {USABLE_MEMORY:.0%} of a device. "
            f"CPU (oneDNN) and GPU (cuDNN) activations differ somewhat: "
            f"`benchmarks/gpu_check.py` measures a GPU's peak.",
            "- State: every variable of the stage's model (weights, EMA copies, frozen earlier "
            "stages) and optimiser, plus one float32 gradient per trainable weight, plus the "
            "optimiser step's temporaries (the rehearsal's, in gradients' bytes; "
            f"{DEFAULT_TRANSIENT:g} x where not rehearsed).",
            f"- Activations from the rehearsal ({h['calibration'] or 'none recorded'}): a "
            "stage it ran takes its measured activations per example (`rehearsed`); another "
            "stage of the same family and stage takes the composed figure times the "
            "rehearsal's measured / composed ratio for it; else the composed figure.",
            f"- Sampling and metrics: the run's "
            f"{forecast.lines[-1].n_samples if forecast.lines else 0} samples through the "
            f"sampler's networks, then the metric network: {h['metric']}.",
            f"- Accelerators (data-sheet peaks, dense): "
            + "; ".join(f"{a.name}: " + ", ".join(f"{p} {v / 1e12:g} TFLOPS"
                                                  for p, v in a.peak.items())
                        for a in accs)
            + ". float32 on A100/H100 is TF32 (TensorFlow's default for convolutions and "
              "matmuls there). Sources: " + "; ".join(SOURCES.values()) + ".",
            f"- Utilisation assumed on the accelerators: {UTILISATION:.0%} of peak. This "
            f"machine: each stage at the FLOP/s of its real train step where "
            f"`benchmarks/rehearse.py` recorded one on this machine "
            f"({sum(line.this_machine['rate_from'] == 'rehearsal' for line in forecast.lines)}"
            f" of {len(forecast.lines)} rows), else at that of its memory runs (compiled forward "
            f"passes; {_num(here['flops_per_second'] / 1e9)} GFLOP/s on average, "
            f"{here['utilisation']:.0%} of its {_num(here['matmul_flops_per_second'] / 1e9)} "
            f"GFLOP/s float32 matmul peak, 2048 x 2048, measured now)."]
    if reh:
        out.append(f"- The last rehearsal (`benchmarks/rehearse.py`, {reh.get('date', '?')}, "
                   f"{reh.get('machine', '?')}) measured "
                   f"{_num(100 * (reh.get('utilisation') or 0))}% of the CPU's matmul peak "
                   f"over the families' paper train steps.")
    else:
        out.append("- No rehearsal recorded yet (`python benchmarks/rehearse.py` measures the "
                   "CPU utilisation of the real train steps).")
    return "\n".join(out) + "\n"


def write(forecast: Forecast, out_dir: str) -> tuple:
    """plan.md and plan.json into ``out_dir`` (atomically); returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    md, js = os.path.join(out_dir, "plan.md"), os.path.join(out_dir, "plan.json")
    artifacts.write_text(md, markdown(forecast))
    artifacts.write_json(js, forecast.to_json())
    return md, js


# --------------------------------------------------------------- run_all.py --plan
def dataset_facts(request, profile) -> tuple:
    """(train images, held-out images, classes, image shape) of the request's dataset:
    the official split sizes of a named dataset (nothing is read), else the data opened."""
    from data import catalog

    name = catalog.ALIASES.get(str(request.dataset).lower(), request.dataset)
    shape = (request.image_size, request.image_size, request.channels)
    if name in DATASET_FACTS:
        train, val, classes = DATASET_FACTS[name]
    else:
        from data import open_dataset
        from experiments.planning import held_out_split

        source = open_dataset(request.dataset, "train", image_size=request.image_size,
                              channels=request.channels, data_dir=request.data_dir)
        held = open_dataset(request.dataset, held_out_split(request.dataset),
                            image_size=request.image_size, channels=request.channels,
                            data_dir=request.data_dir)
        train, val, classes = source.num_examples, held.num_examples, len(source.class_names)
    if profile.train_limit is not None:
        train = min(train, profile.train_limit)
    if profile.val_limit is not None:
        val = min(val, profile.val_limit)
    return train, val, classes, shape


def plan_runs(request, profile, selectors, out_dir, overrides=None, num_classes=None) -> list:
    """The RunPlans thesis 004's selected rows x seeds would train (as
    ``experiments.planning.plan_thesis_004`` makes them, without reading data)."""
    from experiments import planning, runner

    overrides = overrides or {}
    selected = planning.select_rows(selectors, request.tables)
    return [runner.plan_run(row, seed, profile, dataset=request.dataset,
                            image_size=request.image_size, out_dir=out_dir,
                            num_classes=num_classes, channels=request.channels,
                            cli_overrides=overrides.get(row.family),
                            max_steps=getattr(request, "max_steps", None))
            for _, rows in selected for row in rows for seed in range(request.seeds)]


def metric_network_for(request) -> str:
    """The metric network the runs would be scored by, without downloading anything."""
    if request.metrics != "auto":
        return request.metrics
    from metrics import resolve_metric_network

    try:
        return resolve_metric_network("auto", inception_weights=request.inception_weights,
                                      cache_dir=None)
    except Exception:  # noqa: BLE001 - a plan names what it can; the run checks it
        return "evaluator"


def run_plan(request, profile, selectors, out_dir, overrides=None, *, memory=True) -> Forecast:
    """``run_all.py --plan``: plan.md and plan.json into ``out_dir``, the table printed.
    Nothing is trained and no dataset is read (named datasets)."""
    from experiments.planning import check_writable

    started = time.perf_counter()
    train, val, classes, shape = dataset_facts(request, profile)
    plans = plan_runs(request, profile, selectors, out_dir, overrides, num_classes=classes)
    check_writable(out_dir, "--out", "pass --out with a folder you can write to")
    precision = getattr(request, "precision", None) or "auto"
    print(f"[plan] {len(plans)} run(s) of profile {profile.name} on {request.dataset} "
          f"({train} train / {val} held-out images): building and measuring each distinct "
          f"network once (nothing is trained)", flush=True)
    title = (f"`run_all.py --profile {profile.name}"
             + (f" --only {' '.join(request.only)}" if request.only else "")
             + f"` on {request.dataset}")
    forecast = make_forecast(
        plans, profile=profile, train_examples=train, val_examples=val, num_classes=classes,
        image_shape=shape, metric_network=metric_network_for(request), precision=precision,
        max_steps=getattr(request, "max_steps", None), memory=memory,
        accumulate=int(getattr(request, "accumulate", None) or 1),
        progress=None if request.quiet else (lambda text: print(text, flush=True)),
        title=title)
    forecast.header["seconds"] = round(time.perf_counter() - started, 1)
    md, js = write(forecast, out_dir)
    print("\n".join(short_table(forecast)))
    print(f"[plan] hours at {UTILISATION:.0%} of each accelerator's data-sheet peak, "
          f"precision per accelerator: "
          + ", ".join(f"{a.name} {_precision_on(a, precision)}" for a in ACCELERATORS)
          + f"; this machine at its measured rate")
    print(f"[plan] wrote {md} and {js} in {forecast.header['seconds']} s")
    return forecast


if __name__ == "__main__":  # a measuring process of StageCache.prefetch
    import sys

    sys.exit(_measure_chains(sys.argv[1], sys.argv[2]))
