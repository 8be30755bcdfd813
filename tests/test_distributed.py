"""Two gloo processes with per-rank batch B equal one process with batch 2B; resume across world sizes."""

import subprocess
import sys

import pytest
import torch

from conftest import CONFIGS, TINY, weights

# dropout masks come from each rank's own RNG, so equivalence needs dropout 0; and fp32, since bf16
# rounds a batch of 8 and one of 16 differently (train.precision=auto picks bf16 on AMX CPUs)
COMMON = [*TINY, "model.dropout=0", "train.epochs=2", "data.limit=64", "train.precision=fp32"]


def run(args, nproc=1, env=None):
    if nproc == 1:
        cmd = [sys.executable, "-m", "genlab", "train", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "genlab", "train", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_two_processes_equal_one_with_double_batch(tmp_path):
    config = str(CONFIGS / "vae-mnist.yaml")
    run([config, *COMMON, "train.batch_size=8", "--run-dir", str(tmp_path / "ddp"), "--no-figures"], nproc=2)
    run([config, *COMMON, "train.batch_size=16", "--run-dir", str(tmp_path / "single"), "--no-figures"])
    a, b = weights(tmp_path / "ddp"), weights(tmp_path / "single")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.slow
def test_two_process_run_resumes_with_two_and_with_one(tmp_path):
    config = str(CONFIGS / "vae-mnist.yaml")
    one_epoch = [config, *COMMON, "train.epochs=1", "train.batch_size=8", "--no-figures"]
    run([*one_epoch, "--run-dir", str(tmp_path / "a")], nproc=2)
    run([config, *COMMON, "train.batch_size=8", "--run-dir", str(tmp_path / "a"), "--resume", "--no-figures"], nproc=2)
    run([config, *COMMON, "train.batch_size=8", "--run-dir", str(tmp_path / "full"), "--no-figures"], nproc=2)
    for key, value in weights(tmp_path / "full").items():
        torch.testing.assert_close(weights(tmp_path / "a")[key], value, rtol=1e-5, atol=1e-6, msg=key)
    # started with 2 processes, resumed with 1 (batch 16 keeps the global batch)
    run([*one_epoch, "--run-dir", str(tmp_path / "b")], nproc=2)
    proc = run([config, *COMMON, "train.batch_size=16", "--run-dir", str(tmp_path / "b"), "--resume", "--no-figures"])
    assert "resumed from" in proc.stderr
    for key, value in weights(tmp_path / "full").items():
        torch.testing.assert_close(weights(tmp_path / "b")[key], value, rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.slow
def test_gan_two_processes_equal_one_with_double_batch(tmp_path):
    """FCGAN (no BatchNorm, whose per-rank statistics would differ on CPU) with tricks that draw noise."""
    config = str(CONFIGS / "fcgan-mnist.yaml")
    common = ["data.limit=64", "data.test_limit=64", "data.image_size=28", "train.epochs=1", "train.progress=false",
              "model.hidden=[32,32,32]", "model.dropout=0", "model.label_smoothing=[0.7,1.0]",
              "model.instance_noise=0.1", "model.label_flip_prob=0.05", "train.precision=fp32", "--no-figures"]
    run([config, *common, "train.batch_size=8", "--run-dir", str(tmp_path / "ddp")], nproc=2)
    run([config, *common, "train.batch_size=16", "--run-dir", str(tmp_path / "single")])
    a, b = weights(tmp_path / "ddp"), weights(tmp_path / "single")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
