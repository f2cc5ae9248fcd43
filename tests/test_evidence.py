"""experiments.evidence: the report's second-opinion and calibration sections, from tiny
CSVs in tmp_path written with the metrics commands' own columns; and once, the real
committed evaluators on real calibration images through the same CSV."""
import math
import os

import pytest

from experiments import compare, evidence
from metrics.calibration import COLUMNS as CALIBRATION_COLUMNS
from metrics.second_opinion import RUN_COLUMNS, write_csv

FIRST = ("evaluator:synthetic:0.9", "a" * 64)
SECOND = ("evaluator2:synthetic:0.8", "b" * 64)
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
HAVE_FASHION = os.path.isfile(os.path.join(FASHION_DIR, "t10k-images-idx3-ubyte.gz"))


def _networks():
    return {"metric_network": FIRST[0], "metric_network_sha256": FIRST[1],
            "metric_network2": SECOND[0], "metric_network2_sha256": SECOND[1],
            "n_samples": 2000, "reference_images": 60000}


def _run(family, loss, latent, seed, fd, fd2, kid=None, kid2=None, precision=0.5, recall=0.5):
    """A second-opinion CSV row (KID defaults to a tenth of the Fréchet distance, so the
    two metrics of an evaluator agree)."""
    return {"run": f"{family}-{loss}-b128-z{latent}-s{seed}", "family": family, "loss": loss,
            "latent_size": latent, "seed": seed, "fd_eval": fd, "fd_eval2": fd2,
            "kid": fd / 10 if kid is None else kid, "kid_eval2": fd2 / 10 if kid2 is None else kid2,
            "precision": precision, "recall": recall, **_networks()}


# Row means: vae 3 / 1, gan 5 / 2, diffusion 4 / 0.5 (fd_eval / fd_eval2). vae and gan are
# ordered alike by both evaluators (vae better); vae and diffusion are not (fd_eval: vae,
# fd_eval2: diffusion); gan and diffusion alike (diffusion better).
RUNS = [_run("vae", "elbo", 128, 0, 2.0, 1.2), _run("vae", "elbo", 128, 1, 4.0, 0.8),
        _run("gan", "hinge", 128, 0, 5.0, 2.0, precision=0.8, recall=0.3),
        _run("diffusion", "mse", 128, 0, 4.0, 0.5, precision=0.7, recall=0.6)]


def _set(name, fd, kid, precision, recall, fd2, kid2):
    return {"set": name, "description": f"{name} images", "fd_eval": fd, "kid": kid,
            "precision": precision, "recall": recall, "is_eval": 3.0, "fd_eval2": fd2,
            "kid_eval2": kid2, "precision_eval2": 0.5, "recall_eval2": 0.5, **_networks()}


# Best generated rows: fd_eval 3 (vae), KID 0.3 (vae), precision 0.8 (gan), recall 0.6
# (diffusion), fd_eval2 0.5 (diffusion), kid_eval2 0.05 (diffusion).
SETS = [_set("clean", 0.04, 0.001, 0.9, 0.9, 0.02, 0.001),
        _set("blur_1px", 6.0, 0.5, 0.4, 0.2, 0.3, 0.02),
        _set("noise_20", 1.0, 0.1, 0.85, 0.8, 0.1, 0.01)]


def _folder(tmp_path, runs=RUNS, sets=SETS):
    if runs is not None:
        write_csv(runs, tmp_path / evidence.SECOND_OPINION_FILE, RUN_COLUMNS)
    if sets is not None:
        write_csv(sets, tmp_path / evidence.CALIBRATION_FILE, CALIBRATION_COLUMNS)
    return tmp_path


def _readme(folder):
    report = compare.Report(out_dir=str(folder), profile="quick", dataset="synthetic", tables=[])
    return compare.readme_text(report, {})


def _pair_lines(text):
    """The lines of the not-robust pairs' table."""
    return [line for line in text.splitlines() if line.startswith("| ") and "not robust" in line]


def test_the_second_opinion_marks_a_disagreeing_pair_not_robust_and_an_agreeing_one_not(
        tmp_path):
    opinion, _ = evidence.load(_folder(tmp_path, sets=None))
    means = {r["row"]: r for r in opinion.rows}
    assert means["vae/elbo@128"]["seeds"] == 2
    assert means["vae/elbo@128"]["fd_eval"] == pytest.approx(3.0)
    assert means["vae/elbo@128"]["fd_eval2"] == pytest.approx(1.0)
    flagged = {(item["first"], item["second"]) for item in opinion.not_robust["fd_eval"]}
    assert flagged == {("vae/elbo@128", "diffusion/mse@128")}
    assert opinion.not_robust["kid"] == opinion.not_robust["fd_eval"]  # KID = fd / 10 here
    assert opinion.agreement["fd_eval"]["runs"]["n"] == 4
    # over the row means, ranks 1 3 2 (fd_eval) against 2 3 1 (fd_eval2): 1 - 6 * 2 / 24
    assert opinion.agreement["fd_eval"]["rows"]["rho"] == pytest.approx(0.5)
    assert evidence.rank_moves(opinion) == []  # no row moves by 2 places or more
    assert evidence.rank_moves(opinion, 1) == [("vae/elbo@128", 1, 2),
                                               ("diffusion/mse@128", 2, 1)]

    text = _readme(tmp_path)
    assert f"## {evidence.SECOND_OPINION_HEADING}" in text
    assert f"(#{compare._anchor(evidence.SECOND_OPINION_HEADING)})" in text
    assert evidence.CALIBRATION_HEADING not in text  # its CSV is absent
    assert "1 of 3 by Fréchet distance (fd_eval vs fd_eval2), 1 of 3 by KID" in text
    pairs = _pair_lines(text)
    assert pairs == ["| vae/elbo@128, diffusion/mse@128 | 3 vs 4 | 1 vs 0.5 | 0.3 vs 0.4 | "
                     "0.1 vs 0.05 | **not robust**: Fréchet distance and KID |"]
    assert not any("gan/hinge@128" in line for line in pairs)  # its pairs agree
    # the networks and counts behind the numbers are named
    assert FIRST[0] in text and FIRST[1][:12] in text and SECOND[0] in text
    assert "2,000 samples per run" in text and "60,000 train images" in text


def test_spearman_in_the_section_is_that_of_metrics_agreement(tmp_path):
    from metrics.agreement import spearman

    opinion, _ = evidence.load(_folder(tmp_path, sets=None))
    expected = spearman([r["fd_eval"] for r in RUNS], [r["fd_eval2"] for r in RUNS])
    assert opinion.agreement["fd_eval"]["runs"]["rho"] == pytest.approx(expected["rho"])
    assert f"**{expected['rho']:.3f}**" in evidence.second_opinion_markdown(opinion)


def test_the_calibration_section_orders_clean_real_images_best_and_reads_each_metric(
        tmp_path):
    _, calib = evidence.load(_folder(tmp_path))
    by_key = {r.key: r for r in calib.readings}
    assert list(by_key) == list(evidence.CALIBRATION_METRICS)
    assert all(r.clean_best for r in calib.readings)
    fd = by_key["fd_eval"]
    assert (fd.best_row, fd.best_value) == ("vae/elbo@128", pytest.approx(3.0))
    assert fd.punishes == [("blur_1px", 6.0)] and fd.misses == [("noise_20", 1.0)]
    precision = by_key["precision"]  # higher is better: blur's 0.4 is worse than gan's 0.8
    assert precision.best_row == "gan/hinge@128"
    assert precision.punishes == [("blur_1px", 0.4)] and precision.misses == [("noise_20", 0.85)]
    assert by_key["fd_eval2"].best_row == "diffusion/mse@128"
    assert by_key["fd_eval2"].punishes == [] and len(by_key["fd_eval2"].misses) == 2

    text = _readme(tmp_path)
    section = text[text.index(f"## {evidence.CALIBRATION_HEADING}"):]
    table = [line for line in section.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| set | degradation | fd_eval | KID | precision | recall |")
    assert table[1].startswith("| clean |") and table[-1].startswith("| *best generated row*")
    assert "**fd_eval**: clean real images score best; the best generated row, vae/elbo@128, " \
           "scores 3; it punishes blur_1px (6); it misses noise_20 (1)" in section
    assert "2,000 images per set" in section


def test_clean_images_not_best_and_no_generated_rows_are_said(tmp_path):
    sets = [_set("clean", 2.0, 0.1, 0.9, 0.9, 0.02, 0.001), _set("noise_20", 1.0, 0.2, 0.8, 0.8,
                                                                 0.1, 0.01)]
    _, calib = evidence.load(_folder(tmp_path, runs=None, sets=sets))
    sentence = evidence.reading_sentence(calib.readings[0])
    assert "clean real images are **not** its best set" in sentence
    assert "no generated rows" in sentence
    assert evidence.SECOND_OPINION_HEADING not in _readme(tmp_path)


def test_missing_csvs_omit_both_sections(tmp_path):
    assert evidence.load(tmp_path) == (None, None)
    text = _readme(tmp_path)
    assert evidence.SECOND_OPINION_HEADING not in text
    assert evidence.CALIBRATION_HEADING not in text
    assert "The losses of each family side by side" in text


def test_empty_cells_read_as_nan(tmp_path):
    runs = [dict(r) for r in RUNS]
    runs[0]["fd_eval2"] = math.nan  # written as an empty cell
    opinion, _ = evidence.load(_folder(tmp_path, runs=runs, sets=None))
    assert math.isnan(opinion.runs[0]["fd_eval2"])
    assert opinion.agreement["fd_eval"]["runs"]["n"] == 3  # the NaN run is left out


@pytest.mark.skipif(not HAVE_FASHION, reason=f"Fashion-MNIST idx files not in {FASHION_DIR}")
def test_real_calibration_rows_through_the_csv_put_clean_images_best(tmp_path):
    """The committed evaluators on 300 real test images per set (against 2,000 train
    images), written with the command's columns and read back: clean real images score
    best on fd_eval, fd_eval2, KID and kid_eval2."""
    from metrics.calibration import calibration_sets, score_calibration
    from metrics.contrastive import contrastive_shipped_dir

    if not contrastive_shipped_dir("fashion_mnist", (32, 32, 1)).is_dir():
        pytest.skip("the committed second evaluator is not in this checkout")
    sets = calibration_sets(300, seed=0, data_dir=FASHION_DIR,
                            kinds=("clean", "blur_1px", "noise_20"))
    rows = score_calibration(sets, cache_dir=tmp_path / "cache", data_dir=FASHION_DIR,
                             reference_limit=2000)
    write_csv(rows, tmp_path / evidence.CALIBRATION_FILE, CALIBRATION_COLUMNS)
    _, calib = evidence.load(tmp_path)
    assert [s["set"] for s in calib.rows] == ["clean", "blur_1px", "noise_20"]
    by_key = {r.key: r for r in calib.readings}
    for key in ("fd_eval", "kid", "fd_eval2", "kid_eval2"):
        assert by_key[key].clean_best, (key, [s[key] for s in calib.rows])
    assert calib.n_samples == [300] and calib.reference_images == [2000]
    assert len(calib.networks[0]) == 1 and "sha256" in calib.networks[0][0]
