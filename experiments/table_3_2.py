"""Experiment 2 (thesis 004, Table 3.2): two alternative losses per family.

VAE: MI (InfoVAE), WAE; DALL-E: perceptual, MSE; StyleGAN2: hinge, LSGAN;
Stable Diffusion: MAE, Huber. Not in the thesis, run only when selected:
StyleGAN2 with the non-saturating loss (``gan/ns``), the loss compare_gan found
no other loss consistently beats.
"""
from experiments.tables import Table, load_rows

TABLE = Table(
    name="table_3_2",
    title="Experiment 2: the effect of alternative loss functions",
    rows=load_rows("table_3_2", extra_rows=[
        ("gan", "StyleGAN2", "ns", 64, 128),
        ("gan", "StyleGAN2", "ns", 64, 1024),
    ]))
