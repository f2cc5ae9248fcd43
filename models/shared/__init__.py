"""Parts two or more families share, each in one place with public names.

- ``augment``: DiffAugment and adaptive discriminator augmentation (ADA), with the
  ADA state and update a GAN model mixes in (:class:`augment.AdaptiveAugmentation`);
  used by the GAN and face-GAN families.
- ``ema``: the generator's exponential moving average (both GANs).
- ``regularizers``: input gradients, the R1 penalty (both GANs; the GAN family's
  gradient penalty builds on the same pieces).
- ``adversarial``: the non-saturating objective's per-example terms (both GANs).
- ``blocks``: group-norm counts, the fast "same" convolution and the residual block,
  and the convolutional decoder built from them (diffusion's autoencoder, the
  autoregressive family's VQ-VAE).
- ``distributions``: the Gaussian KL divergence to N(0, I) (VAE, diffusion's
  autoencoder).
- ``precision``: mixed precision inside a step (the model's precision from its dtype
  policy, dynamic loss scaling for float16, the float32 boundary of losses and logs);
  every family.

Nothing here imports a family: the families import from here.
"""
