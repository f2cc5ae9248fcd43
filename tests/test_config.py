"""Configuration: strict overrides, JSON round trip, the tables as data, profiles."""
import dataclasses
import json

import pytest

from experiments import table_3_1, table_3_2
from common.config import ConfigError, apply_overrides, dumps, from_dict
from training.config import TrainConfig
from experiments.profiles import PROFILES, get_profile
from experiments.runner import plan_run
from experiments.tables import Selector, SelectorError
from models.vae.config import VAEConfig


def test_unknown_keys_are_errors_that_name_the_key():
    with pytest.raises(ConfigError, match="latent_sise"):
        from_dict(VAEConfig, {"latent_sise": 64})
    cfg = apply_overrides(VAEConfig(), {"widths": [4, 8], "loss": "wae"})
    assert cfg.widths == (4, 8) and cfg.loss == "wae" and cfg.latent_size == 128
    assert json.loads(dumps(cfg))["widths"] == [4, 8]


def test_tables_hold_the_thesis_grid_and_numbers():
    rows_1, rows_2 = table_3_1.TABLE.rows, table_3_2.TABLE.rows
    assert len(rows_1) == 8 and len([r for r in rows_2 if r.in_thesis]) == 16
    vae = [r for r in rows_1 if r.family == "vae"]
    assert [(r.loss, r.batch_size, r.latent_size) for r in vae] == [("elbo", 128, 128),
                                                                    ("elbo", 2048, 2048)]
    assert vae[0].thesis["fid"] == pytest.approx(1545.6937) and vae[0].thesis["is"] == 1.0
    gan = [r for r in rows_2 if r.family == "gan" and r.in_thesis]
    assert {(r.loss, r.batch_size, r.latent_size) for r in gan} == {
        (loss, 64, z) for loss in ("hinge", "lsgan") for z in (128, 1024)}


def test_selectors():
    assert Selector.parse("vae/elbo@2048") == Selector("vae", "elbo", 2048)
    assert len(table_3_2.TABLE.select([Selector.parse("vae")])) == 4
    assert len(table_3_1.TABLE.select([Selector.parse("vae@2048")])) == 1
    # rows beyond the thesis run only when their loss is named
    assert not any(r.loss == "ns" for r in table_3_2.TABLE.select([Selector("gan")]))
    assert len(table_3_2.TABLE.select([Selector("gan", "ns")])) == 2
    for bad in ("", "vae/", "VAE", "vae@", "vae/elbo@12x"):
        with pytest.raises(SelectorError):
            Selector.parse(bad)


def test_profiles_scale_runs_without_changing_which_exist(tmp_path):
    row = table_3_1.TABLE.rows[1]  # vae/elbo at batch = latent = 2048
    plans = {name: plan_run(row, 0, get_profile(name), dataset="synthetic", image_size=32,
                            out_dir=str(tmp_path)) for name in PROFILES}
    assert plans["paper"].family_config.batch_size == 2048
    assert plans["smoke"].family_config.batch_size == 8
    assert {p.family_config.latent_size for p in plans.values()} == {2048}
    assert plans["paper"].name == "vae-elbo-b2048-z2048-s0"
    assert isinstance(plans["quick"].train_config, TrainConfig)
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("huge")


def test_every_family_is_written_in_the_contract_types():
    """Each family's config is a FamilyConfig (validate() -> None, batches_per_step()),
    its losses a LossRegistry, its presets family fields only, and each stage's training
    length valid TrainConfig overrides."""
    import dataclasses

    import models

    for name in models.family_names():
        family = models.get_family(name)
        config = family.config_cls()
        assert isinstance(config, models.FamilyConfig)
        assert config.validate() is None
        assert isinstance(config.batches_per_step(), int) and config.batches_per_step() >= 1
        assert isinstance(family.losses, models.LossRegistry)
        assert family.loss(config.loss) is family.losses[config.loss]
        fields = {f.name for f in dataclasses.fields(config)}
        for profile in PROFILES:
            assert set(family.preset(profile)) <= fields, (name, profile)
            for stage in family.stages:
                from_dict(TrainConfig, {**get_profile(profile).train_config(0),
                                        **family.stage_train_overrides(profile, stage)})


def test_a_family_refuses_runner_keys_in_its_presets_and_unknown_stages():
    import dataclasses

    import models
    from models.vae import FAMILY

    def family(**changes):
        return dataclasses.replace(FAMILY, **changes)

    with pytest.raises(TypeError, match=r"PRESETS\['quick'\] holds \['train'\]"):
        family(presets={**FAMILY.presets, "quick": {"train": {"epochs": 1}}})
    with pytest.raises(TypeError, match=r"TRAINING\['quick'\] must map stage names"):
        family(training={"quick": {"prior": models.StageTraining(epochs=1)}})
    with pytest.raises(TypeError, match="LossRegistry"):
        family(losses=dict(FAMILY.losses))



def test_the_colab_profile_is_the_paper_one_shortened_where_it_exceeds_the_budget(tmp_path):
    """colab trains the paper's networks (every family's colab preset is its paper preset)
    and the paper's lengths, except the stages sized to the thesis's 2.5 T4-hours per row:
    the GAN's 25 of 100 epochs (the plan behind it: docs/paper-path.md)."""
    from models import family_names, get_family

    for name in family_names():
        family = get_family(name)
        assert family.preset("colab") == family.preset("paper"), name
    for row in (*table_3_1.TABLE.rows, *table_3_2.TABLE.rows):
        paper, colab = (plan_run(row, 0, get_profile(p), dataset="synthetic", image_size=32,
                                 out_dir=str(tmp_path)) for p in ("paper", "colab"))
        assert colab.family_config == paper.family_config, row.key
        assert [s.train_config for s in colab.stages] == [s.train_config for s in paper.stages]
        shorter = dict(epochs=25) if row.family == "gan" else {}
        assert colab.train_config == dataclasses.replace(paper.train_config, **shorter), row.key
