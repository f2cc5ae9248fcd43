"""Experiment 1 (thesis 004, Table 3.1): each family with its baseline loss.

VAE/ELBO, DALL-E/cross-entropy, StyleGAN2/Wasserstein-GP and Stable
Diffusion/MSE, at batch = latent = 128 and 2048 (StyleGAN2: batch 64, latent
128 and 1024), on CIFAR-100.
"""
from experiments.tables import Table, load_rows

TABLE = Table(
    name="table_3_1",
    title="Experiment 1: generation quality of four families with their baseline losses",
    rows=load_rows("table_3_1"))
