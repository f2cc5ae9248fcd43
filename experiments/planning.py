"""From a command's request to checked plans, before anything trains.

Which table rows and seeds run, on which data, scored by which network; then every
check that can fail up front (selectors, configs, models that build, run folders that
hold the same run or nothing, damaged files, the metrics cache), so that a bad input
costs seconds, not the hours of the runs before it. The result is a
:class:`experiments.grid.RunSet` per thesis.
"""
from __future__ import annotations

import dataclasses

from common.config import ConfigError, convert_overrides, from_dict, to_jsonable, value_text
from common.files import writable_dir_problem
from data import open_dataset
from experiments import bilinear, runner, table_3_1, table_3_2, thesis_003
from experiments.grid import RunSet
from experiments.scoring import check_scored_by, diversity_features, make_scorer
from experiments.tables import Selector, SelectorError
from models import UnknownFamilyError, family_names, get_family
from models.losses import UnknownLossError
from training.checkpoints import weights_path
from training.trainer import read_history

#: thesis 004's tables, in report order
TABLES = (table_3_1.TABLE, table_3_2.TABLE)


def held_out_split(dataset: str) -> str:
    return "validation" if dataset == "celeb_a" else "test"


def check_writable(folder, what, fix):
    """Refuse, before anything trains, a folder no file can be written in (a file in the
    way, a read-only mount, no permission): each run would otherwise fail at its first
    write, after its training."""
    problem = writable_dir_problem(folder)
    if problem:  # (a name with bytes the locale cannot decode is shown escaped: \udce9)
        shown = str(folder).encode("utf-8", "backslashreplace").decode("utf-8")
        raise RuntimeError(f"{what} {shown}: {problem}; {fix}")


def check_split_sizes(plans, train, val):
    """Refuse, before anything trains, a split too small for a run's batch: the train split
    must fill one step (a WGAN's step takes several batches) and the held-out split one
    batch of each stage, or the run fails at its start or after its first epoch."""
    for plan in plans:
        for part in (*plan.stages, plan):
            final = part is plan
            batch = int(plan.family_config.batch_size if final else part.batch_size)
            per_step = batch * (runner.batches_per_step(plan.family_config) if final else 1)
            what = part.name if final else f"{part.name} ({part.stage} stage of {plan.name})"
            for source, needed, unit in ((train, per_step, "one train step"),
                                         (val, batch, "one batch")):
                if source is not None and source.num_examples < needed:
                    raise RuntimeError(
                        f"{what}: the {source.split} split of {source.name} has "
                        f"{source.num_examples} image(s), fewer than {unit} of {needed}; use "
                        f"a dataset with more images (a folder: dataset holds out about 10% "
                        f"of its files for the test split) or a --profile with smaller "
                        f"batches (smoke: 8)")


def select_rows(only, table_names=("table_3_1", "table_3_2")):
    """The table rows to run, and the tables they belong to; bad selectors raise."""
    tables = [t for t in TABLES if t.name in table_names]
    if only:
        selectors = [Selector.parse(text) for text in only]
    else:
        implemented = []
        for name in family_names():
            if name == "faces":  # thesis 003's family: selected as faces/<mode>
                continue
            try:
                get_family(name)
                implemented.append(name)
            except UnknownFamilyError:
                print(f"[run_all] family {name!r} is not implemented yet: its rows are skipped")
        selectors = [Selector(name) for name in implemented]
    for selector in selectors:
        family = get_family(selector.family)  # unknown family -> UnknownFamilyError
        if selector.loss is not None:
            try:  # the registry is the one place that knows a family's losses
                family.loss(selector.loss)
            except UnknownLossError as err:
                raise SelectorError(str(err)) from err
        if not any(t.select([selector]) for t in tables):
            raise SelectorError(f"selector {selector.family}/{selector.loss or '*'}"
                                f"@{selector.latent or '*'} matches no row of "
                                f"{', '.join(t.name for t in tables)}")
    return [(table, table.select(selectors)) for table in tables]


#: family fields that a table row or the dataset sets, never ``--set``: why, and what to do
ROW_FIELDS = {
    "batch_size": "the batch comes from the table row (and the profile); choose rows with "
                  "--only family/loss@latent",
    "latent_size": "the latent size comes from the table row; choose it with --only "
                   "family@latent (e.g. --only gan@2048)",
    "loss": "the loss comes from the table row; choose it with --only family/loss "
            "(e.g. --only gan/hinge)",
    "num_classes": "the number of classes comes from the dataset (--dataset)",
}


def family_overrides(overrides, selectors, table_names, profile) -> dict:
    """``--set``'s (family, field, text) triples as {family: {field: typed value}}, each
    converted against the family's config dataclass and checked before any data is read:
    an unknown family or field, a value of the wrong type, a field the table row sets, a
    family no selected row belongs to: a ConfigError (exit 2). ``selectors``: thesis
    004's (``[]``: only thesis 003 was selected, whose face runs take no ``--set``)."""
    if not overrides:
        return {}
    selected = set() if selectors == [] else {
        row.family for _, rows in select_rows(selectors, table_names) for row in rows}
    texts = {}
    for family, field, text in overrides:
        where = f"--set {family}.{field}={text}"
        if family == "faces":
            raise ConfigError(f"{where}: thesis 003's face runs are set by their mode "
                              f"(--only faces/<mode>) and --optimizer, not --set")
        try:
            get_family(family)
        except UnknownFamilyError as err:
            raise ConfigError(f"{where}: {err}") from None
        if family not in selected:
            raise ConfigError(f"{where}: no selected row is of the {family} family (selected: "
                              f"{', '.join(sorted(selected)) or 'none of thesis 004'}); add "
                              f"it to --only or drop this --set")
        texts.setdefault(family, {})[field] = text
    out = {}
    for family, fields in texts.items():
        config_cls = get_family(family).config_cls
        names = {f.name for f in dataclasses.fields(config_cls)}
        out[family] = convert_overrides(
            config_cls, fields, where=f"--set {family}.",
            fixed={k: v for k, v in ROW_FIELDS.items() if k in names})
        preset = from_dict(config_cls, get_family(family).preset(profile.name))
        for field, value in out[family].items():
            if to_jsonable(getattr(preset, field)) == to_jsonable(value):
                print(f"[run_all] --set {family}.{field}={value_text(value)} is the "
                      f"{profile.name} profile's value already: its runs are the ones "
                      f"without it")
    return out


def check_runs(plans, network=None) -> tuple[dict, dict]:
    """What each run folder holds, checked: (run name -> metrics record of a complete run
    or None; run name -> sampler changes of a complete run to sample again). A folder
    holding another run, damaged files of an unfinished run and (given ``network``) a
    complete run scored by another network raise."""
    done, resample = {}, {}
    for plan in plans:
        for stage in plan.stages:
            runner.check_reusable(stage)
        runner.check_reusable(plan)
        done[plan.name] = runner.read_metrics(plan)
        if done[plan.name] is not None:
            if network is not None:
                check_scored_by(plan, done[plan.name], network)
            changes = runner.sampler_changes(plan)
            if changes:
                resample[plan.name] = changes
                done[plan.name] = None
        else:
            for part in (*plan.stages, plan):
                if not runner.is_complete(part):
                    read_history(part.run_dir)
    check_stage_weights(plans, done, resample)
    return done, resample


def check_stage_weights(plans, done, resample) -> None:
    """ConfigError (one line) when a run to train needs a complete first stage whose
    weights are gone (a committed stage ships its record, not always its weights): said
    before anything trains, with what to delete so that it trains again and no complete
    row stays recorded against weights that no longer exist."""
    for plan in plans:
        if done[plan.name] is not None or plan.name in resample:
            continue
        for stage in plan.stages:
            if not runner.is_complete(stage) or weights_path(stage.run_dir) is not None:
                continue
            users = runner.rows_trained_on(stage.run_dir)
            also = (f", and the metrics.json of the rows trained on it ({', '.join(users)}), "
                    f"which would no longer match it" if users else "")
            raise ConfigError(
                f"{stage.run_dir} is complete but holds no weights (no checkpoints/, no "
                f"weights/), and {plan.name} trains on it: delete its metrics.json to train "
                f"it again{also}")


def check_accumulation(plans, replicas: int = 1) -> None:
    """ValueError (one line, naming the run and the batches that would work) when a
    run's ``--accumulate`` does not divide one of its stages' per-replica batches."""
    for plan in plans:
        for part in (*plan.stages, plan):
            batch = int(getattr(part, "batch_size", None) or plan.family_config.batch_size)
            try:
                plan.runtime.check_batch(batch, replicas)
            except ValueError as err:
                raise ValueError(f"{part.name}: {err}; choose --accumulate among the divisors "
                                 f"of {batch // max(replicas, 1)}") from None


@dataclasses.dataclass
class Thesis004:
    """Thesis 004's tables, planned: the tables asked for and their runs."""
    out_dir: str
    tables: list
    runs: RunSet


def plan_thesis_004(request, profile, selectors, out_dir, overrides=None, runtime=None,
                    replicas: int = 1) -> Thesis004:
    """The runs of the selected rows x seeds, checked. ``request``: its dataset and
    channels resolved (``experiments.suite``); ``overrides``: {family: {field: value}}
    of ``--set`` (:func:`family_overrides`); ``runtime``: the resolved precision, XLA and
    accumulation (``training.runtime.Runtime``), ``replicas`` the strategy's."""
    overrides = overrides or {}
    selected = select_rows(selectors, request.tables)
    check_writable(out_dir, "--out", "pass --out with a folder you can write to")
    train = open_dataset(request.dataset, "train", image_size=request.image_size,
                         channels=request.channels, data_dir=request.data_dir,
                         limit=profile.train_limit)
    val = open_dataset(request.dataset, held_out_split(request.dataset),
                       image_size=request.image_size, channels=request.channels,
                       data_dir=request.data_dir, limit=profile.val_limit)
    plans = [runner.plan_run(row, seed, profile, dataset=request.dataset,
                             image_size=request.image_size, out_dir=out_dir,
                             num_classes=len(train.class_names), channels=request.channels,
                             cli_overrides=overrides.get(row.family),
                             max_steps=request.max_steps, runtime=runtime)
             for _, rows in selected for row in rows for seed in range(request.seeds)]
    check_accumulation(plans, replicas)
    for plan in plans:
        runner.check_builds(plan, train.image_shape)
    runner.check_shared_stages(plans)
    check_split_sizes(plans, train, val)
    score, network = make_scorer(request, train)
    done, resample = check_runs(plans, network)
    return Thesis004(out_dir=out_dir, tables=[table for table, _ in selected],
                     runs=RunSet(plans=plans, done=done, resample=resample, train_source=train,
                                 val_source=val, score=score, network=network))


@dataclasses.dataclass
class Thesis003:
    """Thesis 003's experiments, planned: the bilinear game's config (None when not
    selected) and the face runs (None when none is selected)."""
    out_dir: str
    dataset: str
    bilinear: object
    runs: RunSet | None


def plan_thesis_003(request, profile, selections, dataset, out_dir) -> Thesis003 | None:
    """Check everything thesis 003's selected experiments need, before anything trains:
    selectors, step sizes, optimiser, data (64x64 RGB), run folders. None when none selected."""
    if not selections:
        return None
    face_runs = thesis_003.face_runs(selections)
    bilinear_config = (bilinear.config_for(profile.name, request.bilinear_eta)
                       if thesis_003.wants_bilinear(selections) else None)
    check_writable(out_dir, "--out", "pass --out with a folder you can write to")
    if not face_runs:
        return Thesis003(out_dir=out_dir, dataset=dataset, bilinear=bilinear_config, runs=None)
    plans = thesis_003.plan_faces(face_runs, profile, dataset=dataset, out_dir=out_dir,
                                  seeds=request.seeds, optimizer=request.optimizer,
                                  max_steps=request.max_steps)
    train = open_dataset(dataset, "train", image_size=thesis_003.IMAGE_SIZE, channels=3,
                         data_dir=request.data_dir, limit=thesis_003.train_limit(profile))
    val = open_dataset(dataset, held_out_split(dataset), image_size=thesis_003.IMAGE_SIZE,
                       channels=3, data_dir=request.data_dir, limit=profile.val_limit)
    for plan in plans:
        runner.check_builds(plan, train.image_shape)
    check_split_sizes(plans, train, val)
    done, resample = check_runs(plans)
    score, network = make_scorer(request, train)
    for plan in plans:
        if done[plan.name] is not None:
            check_scored_by(plan, done[plan.name], network)
    features = (diversity_features(request, train, network)
                if any(metrics is None for metrics in done.values()) else None)
    return Thesis003(out_dir=out_dir, dataset=dataset, bilinear=bilinear_config,
                     runs=RunSet(plans=plans, done=done, resample=resample, train_source=train,
                                 val_source=val, score=score, network=network,
                                 header="thesis 003", timed=False,
                                 callbacks=_control_timeline(train, features)))


def _control_timeline(train, features):
    """callbacks(plan) of a face run: its control-grid timeline (thesis_003.ControlTimeline),
    measured beside 16 real images (read once, when the first run needs them)."""
    real = []

    def callbacks(plan):
        if not real:
            real.append(next(iter(train.batches(16)))[0])
        return [thesis_003.ControlTimeline(plan.run_dir, plan.family_config.control_every,
                                           real[0], features=features)]
    return callbacks
