"""What a command writes after its runs: thesis 004's tables (from every complete run in
the folder, not only this command's), the folder's README.md, thesis 003's face table.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import traceback

from common.config import ConfigError, to_jsonable
from common.run_record import RunConfig
from experiments import compare, runner, thesis_003
from experiments.scoring import network_kind
from experiments.summary import aggregate, write_table
from models import UnknownFamilyError, get_family
from training.runtime import Runtime


def complete_runs(out_dir, tables, profile, request, num_classes):
    """(table, plan, metrics) of every complete run in ``out_dir/runs`` that this request
    would have made (same profile, dataset, image size, configuration), selected or not,
    so that rerunning a subset keeps the other rows of the tables."""
    found = []
    runs_dir = os.path.join(out_dir, "runs")
    for table in tables:
        for row in table.rows:
            for name in sorted(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else []:
                prefix = f"{row.family}-{row.loss}-"
                if not (name.startswith(prefix) and f"-z{row.latent_size}-s" in name):
                    continue
                base, overridden, _ = name.partition("+")  # runs/<row>-s<seed>+<--set values>
                precision = next((p for p, mark in runner.PRECISION_MARKS.items()
                                  if mark and base.endswith(mark)), "float32")
                base = base.removesuffix(runner.PRECISION_MARKS[precision])
                seed = base.rsplit("-s", 1)[-1]
                if not seed.isdigit():
                    continue
                try:
                    plan = runner.plan_run(row, int(seed), profile, dataset=request.dataset,
                                           image_size=request.image_size, out_dir=out_dir,
                                           channels=request.channels,
                                           num_classes=num_classes,
                                           cli_overrides=(_recorded_overrides(runs_dir, name)
                                                          if overridden else None),
                                           runtime=Runtime(precision=precision))
                except (UnknownFamilyError, ConfigError):  # a family not (yet) in this checkout
                    continue
                if plan.name != name:
                    continue
                try:
                    matches = runner.recorded_identity(plan) == plan.identity()
                except runner.RunError as err:
                    print(f"[run_all] left out of the tables: {err}", file=sys.stderr)
                    continue
                metrics = runner.read_metrics(plan) if matches else None
                if metrics is not None:
                    found.append((table, plan, metrics))
    return found


def _recorded_overrides(runs_dir, name) -> dict:
    """The ``--set`` values a run folder was trained with (its identity's ``overrides``),
    with the sampler settings it was last sampled with: what to plan it again with."""
    try:
        identity = RunConfig.read(os.path.join(runs_dir, name)).identity or {}
        overrides = dict(identity.get("overrides") or {})
        family = get_family(identity.get("family"))
    except (OSError, ValueError, TypeError):  # (NotARecord, UnknownFamilyError included)
        return {}  # planned without: its name will not match, so it is left out
    recorded = identity.get("family_config") or {}
    return {**{f: recorded[f] for f in family.sampler_fields if f in recorded}, **overrides}


def _line_key(plan) -> str:
    """Which table line a run belongs to within its row: its overrides and its precision
    ('' for neither: the profile's preset in float32)."""
    precision = plan.runtime.precision
    if not plan.overrides and precision == "float32":
        return ""
    return json.dumps([to_jsonable(plan.overrides), precision], sort_keys=True)


def write_tables(thesis, results, request, profile):
    """Thesis 004's tables (``thesis``: a planning.Thesis004) from this command's
    ``results`` and every other complete run in the folder that fits the request."""
    out_dir, network = thesis.out_dir, thesis.runs.network
    context = (f"Profile `{profile.name}`, dataset `{request.dataset}`: every complete run in "
               f"this folder (the seeds column says how many per row). Written by run_all.py.")
    num_classes = len(thesis.runs.train_source.class_names)
    rehearsal = getattr(request, "max_steps", None)
    if rehearsal is not None:  # this command's rehearsal runs only, never a result
        context = (f"REHEARSAL (`--max-steps {rehearsal}`): every stage stopped after "
                   f"{rehearsal} step(s); these numbers are not results. Profile "
                   f"`{profile.name}`, dataset `{request.dataset}`. Written by run_all.py.")
        found = {}
    else:  # (folders named ...-rehearsal<N> are never planned here: see runner.run_name)
        found = {(table.name, plan.name): (table, plan, metrics) for table, plan, metrics
                 in complete_runs(out_dir, thesis.tables, profile, request, num_classes)}
    tables = {table.name: table for table in thesis.tables}
    for plan in thesis.runs.plans:  # this invocation's results, whatever the folder scan saw
        if results.get(plan.name):
            found[(plan.row.table, plan.name)] = (tables[plan.row.table], plan,
                                                  results[plan.name])
    by_table = {}
    for table, plan, metrics in found.values():  # a row's runs with other --set: other lines
        by_table.setdefault(table.name, (table, {}))[1].setdefault(
            (plan.row, _line_key(plan)), (plan, []))[1].append(metrics)
    for table, by_row in by_table.values():
        lines = []
        # the table's own order, whatever order the runs finished in; a row's plain runs
        # first, then its runs with --set overrides
        keys = sorted(by_row, key=lambda key: (table.rows.index(key[0]), key[1]))
        for row, key in keys:
            plan, runs = by_row[(row, key)]
            kinds = {network_kind(r.get("metric_network")) for r in runs}
            if len(kinds) > 1:  # seeds scored by different networks never share a line
                kept = [r for r in runs if network_kind(r.get("metric_network")) == network]
                print(f"[run_all] {row.key}: left out {len(runs) - len(kept)} seed(s) scored by "
                      f"another metric network than --metrics {network}", file=sys.stderr)
                runs = kept
            if runs:
                line = aggregate(row, sorted(runs, key=lambda r: r.get("seed", 0)))
                if plan.overrides:
                    line["overrides"] = to_jsonable(plan.overrides)
                if plan.runtime.precision != "float32":
                    line["trained_in"] = plan.runtime.precision
                lines.append(line)
        if rehearsal is not None:
            table = dataclasses.replace(table, title=f"REHEARSAL ({rehearsal} step(s) per "
                                                     f"stage, not results): {table.title}")
        write_table(out_dir, table, lines, context)
        print(f"[run_all] wrote {os.path.join(out_dir, table.name)}.{{md,csv,json}}")


def write_report_index(out_dir) -> bool:
    """OUT/README.md (experiments.compare): every table in the folder and, per family, its
    losses side by side. False, with the error printed, if it could not be drawn (the
    tables and the runs are written already: rerunning the command redraws it)."""
    try:
        path = compare.write_readme(compare.load_report(out_dir))
    except compare.ReportError as err:  # no table written: every run failed
        print(f"[run_all] no README.md: {err}", file=sys.stderr)
        return True
    except Exception:  # a drawing bug must not hide that the runs and tables are fine
        traceback.print_exc()
        print(f"[run_all] {out_dir}/README.md could not be written (the runs and tables "
              f"were); rerun the same command to redraw it", file=sys.stderr)
        return False
    print(f"[run_all] wrote {path} (and its figures/)")
    return True


def write_face_table(thesis, results, profile):
    """thesis_003_faces.{md,csv,json} and its curves (``thesis``: a planning.Thesis003)
    from the face runs that finished or were complete; nothing when none did."""
    context = (f"Profile `{profile.name}`, dataset `{thesis.dataset}` (64x64). "
               f"Written by run_all.py.")
    rehearsal = next((p.max_steps for p in thesis.runs.plans if p.max_steps is not None), None)
    if rehearsal is not None:
        context = (f"REHEARSAL (`--max-steps {rehearsal}`): every run stopped after "
                   f"{rehearsal} step(s); these numbers are not results. " + context)
    lines = [thesis_003.report_line(plan, results[plan.name]) for plan in thesis.runs.plans
             if plan.name in results]
    if lines:
        thesis_003.write_face_reports(thesis.out_dir, lines, context,
                                      thesis_003.stand_in_note(thesis.dataset))
        base = os.path.join(thesis.out_dir, "thesis_003_faces")
        print(f"[run_all] wrote {base}.{{md,csv,json}}")
