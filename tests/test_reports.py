"""Report writers: whole or nothing; grids; table aggregation over seeds."""
import numpy as np
import pytest

from experiments import summary, table_3_1
from training import artifacts


def test_a_failed_write_leaves_the_previous_file(tmp_path):
    path = tmp_path / "metrics.json"
    artifacts.write_json(path, {"fid": 1.0})
    with pytest.raises(RuntimeError):
        with artifacts.atomic_path(path) as tmp:
            with open(tmp, "w") as f:
                f.write('{"fid": 2')  # half a file...
            raise RuntimeError("killed mid-write")
    assert artifacts.read_json(path) == {"fid": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp left behind


def test_uint8_conversion_and_grid():
    images = np.array([-1.0, -0.5, 0.0, 1.0, 1.5], np.float32).reshape(5, 1, 1, 1)
    assert artifacts.to_uint8(images).ravel().tolist() == [0, 64, 128, 255, 255]
    grid = artifacts.image_grid(np.zeros((5, 4, 4, 3), np.uint8), columns=3)
    assert grid.shape == (2 * 5 - 1, 3 * 5 - 1, 3)


def _result(seed, fid, network="evaluator:x"):
    return {"batch_size": 8, "n_samples": 64, "metric_network": network, "fid": fid,
            "is": 2.0 + seed, "is_split_std": 0.1 + seed, "kid": None, "train_loss": 1.0 + seed,
            "val_loss": 2.0, "precision": 0.5, "recall": 0.25}


def test_seeds_aggregate_to_mean_and_std_and_networks_never_mix():
    row = table_3_1.TABLE.rows[0]
    line = summary.aggregate(row, [_result(0, 10.0), _result(1, 20.0)])
    assert line["fid"] == 15.0 and line["fid_std"] == 5.0 and line["seeds"] == 2
    assert line["is"] == 2.5 and line["is_std"] == 0.5  # std over seeds, not the split std
    assert line["is_split_std"] == pytest.approx(0.6)  # the within-run spread, its own column
    assert line["thesis_fid"] == pytest.approx(1545.6937)
    single = summary.aggregate(row, [_result(0, 10.0)])
    # one seed has no spread across seeds; the split spread never stands in for it
    assert single["is_std"] is None and single["fid_std"] is None
    assert single["is_split_std"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="different networks"):
        summary.aggregate(row, [_result(0, 1.0), _result(1, 1.0, "inception-2015-12-05")])
