"""Autoregressive family (thesis 004, "DALL-E"): a VQ-VAE tokenizer with an EMA codebook
(stage 1, shared by the loss rows of one codebook size K = the row's latent size) and
a class-conditional decoder-only transformer over [label] + image codes (stage 2)
trained with cross-entropy, the Brier score ("mse") or cross-entropy plus a
perceptual term; sampling with temperature, top-k, guidance and a key/value cache."""
from models import Family, Stage
from models.autoregressive.config import BATCH_CAPS, PRESETS, TRAINING, AutoregressiveConfig
from models.autoregressive.losses import LOSSES
from models.autoregressive.model import AutoregressivePrior, Tokenizer

#: The config fields that define the tokenizer: rows agreeing on them share it.
TOKENIZER_FIELDS = ("latent_size", "downsample", "vq_widths", "code_dim", "vq_batch_size",
                    "vq_learning_rate", "commitment_weight", "codebook_decay",
                    "restart_threshold")
#: The config fields only the sampler reads: changing them re-samples a finished run.
SAMPLER_FIELDS = ("temperature", "top_k", "guidance_scale")


def build_tokenizer(config: AutoregressiveConfig, image_shape, global_batch_size, seed=0,
                    inputs=None) -> Tokenizer:
    return Tokenizer(config, image_shape=image_shape, global_batch_size=global_batch_size,
                     seed=seed)


def build_prior(config: AutoregressiveConfig, image_shape, global_batch_size, seed=0,
                inputs=None) -> AutoregressivePrior:
    return AutoregressivePrior(config, image_shape=image_shape,
                               global_batch_size=global_batch_size, seed=seed,
                               tokenizer=(inputs or {}).get("tokenizer"))


FAMILY = Family(
    name="autoregressive", model_name="DALL-E", config_cls=AutoregressiveConfig, losses=LOSSES,
    presets=PRESETS,
    stages=(Stage("tokenizer", build_tokenizer, shared_fields=TOKENIZER_FIELDS,
                  batch_field="vq_batch_size"),
            Stage("prior", build_prior)),
    sampler_fields=SAMPLER_FIELDS, training=TRAINING, batch_caps=BATCH_CAPS)
