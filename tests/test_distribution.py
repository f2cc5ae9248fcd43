"""Training under tf.distribute gives the same update as one device.

Logical CPU devices must be configured before TensorFlow starts, so each
check runs in its own process.
"""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("loss", ["elbo", "wae"])  # wae: an MMD over the all-gathered batch
@pytest.mark.slow
def test_mirrored_two_cpus_equals_one_device(tmp_path, loss):
    out = tmp_path / "weights.npz"
    proc = subprocess.run([sys.executable, "-m", "tests.drivers.train_vae", str(tmp_path),
                           "--loss", loss, "--mirrored-compare", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    arrays = np.load(out)
    n = len([k for k in arrays.files if k.startswith("one_")])
    assert n > 0 and n == len([k for k in arrays.files if k.startswith("two_")])
    for i in range(n):
        one, two = arrays[f"one_{i}"], arrays[f"two_{i}"]
        np.testing.assert_allclose(two, one, atol=1e-5, rtol=0)
    # the step did something: one device and two replicas both moved the weights away
    # from the seeded initial values they share
    assert not np.allclose(arrays["one_0"], arrays["init_0"])


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_multiworker_two_processes_complete_a_smoke_run(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    out = tmp_path / "out"
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster,
                                                     "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            [sys.executable, "run_all.py", "--profile", "smoke", "--only", "vae/elbo@128",
             "--dataset", "synthetic", "--strategy", "multiworker", "--out", str(out), "--quiet",
             "--metrics", "none"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=400)[0])
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
    for proc, text in zip(procs, outputs):
        assert proc.returncode == 0, text[-3000:]
    assert "MultiWorkerMirroredStrategy x2" in outputs[0]
    run = out / "runs" / "vae-elbo-b8-z128-s0"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 4 and np.isfinite(metrics["train_loss"])
    config = json.loads((run / "config.json").read_text())
    assert config["num_replicas"] == 2
    assert (out / "table_3_1.csv").exists()
