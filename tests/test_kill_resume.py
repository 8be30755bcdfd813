"""A training process killed with SIGKILL — mid-epoch or while writing a checkpoint — resumes exactly."""

import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import CONFIGS, losses, weights

# The seed architecture on 256 images, batch 16: 16 steps per epoch, slow enough to be killed mid-run.
ARGS = [str(CONFIGS / "vae-mnist.yaml"), "data.limit=256", "data.test_limit=64", "train.batch_size=16",
        "train.epochs=2", "train.checkpoint_every_steps=1", "train.keep_checkpoints=3", "train.progress=false",
        "train.num_threads=1", "--no-figures"]


# `python -c KILL_WHILE_WRITING TARGET train ...`: genlab's CLI with the atomic write of checkpoint
# TARGET replaced by one that writes half of the file's temporary copy, then SIGKILLs the process.
KILL_WHILE_WRITING = """
import os, signal, sys
from genlab.core import atomic

target, real_write = sys.argv.pop(1), atomic.atomic_write_bytes

def half_then_die(path, data):
    if path.name != target:
        return real_write(path, data)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
    os.kill(os.getpid(), signal.SIGKILL)

atomic.atomic_write_bytes = half_then_die
from genlab.cli import main
sys.argv[0] = "genlab"
main()
"""


def start(run_dir, *extra, prefix=("-m", "genlab")):
    return subprocess.Popen([sys.executable, *prefix, "train", *ARGS, "--run-dir", str(run_dir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc):
    _, err = proc.communicate(timeout=600)
    return proc.returncode, err


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run = tmp_path_factory.mktemp("reference") / "run"
    code, err = finish(start(run))
    assert code == 0, err[-2000:]
    return run


def assert_same_run(run, reference):
    """Same per-epoch losses and bit-identical final weights."""
    assert losses(run) == losses(reference)
    for key, value in weights(reference).items():
        assert torch.equal(weights(run)[key], value), key


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_checkpoint", [3, 16, 21])  # mid epoch 1, at the epoch boundary, mid epoch 2
def test_sigkill_mid_run_then_resume_equals_uninterrupted(reference, tmp_path, kill_after_checkpoint):
    run = tmp_path / "run"
    proc = start(run)
    target = run / "checkpoints" / f"step_{kill_after_checkpoint:09d}.safetensors"
    while not target.exists() and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    code, _ = finish(proc)
    assert code == -signal.SIGKILL, "the run finished before it could be killed"
    code, err = finish(start(run, "--resume"))
    assert code == 0, err[-2000:]
    assert_same_run(run, reference)


@pytest.mark.slow
def test_sigkill_while_writing_a_checkpoint(reference, tmp_path):
    run = tmp_path / "run"
    code, _ = finish(start(run, prefix=("-c", KILL_WHILE_WRITING, "step_000000010.safetensors")))
    assert code == -signal.SIGKILL
    assert list((run / "checkpoints").glob("step_000000010.safetensors.*.tmp"))  # the half-written file
    assert not (run / "checkpoints" / "step_000000010.safetensors").exists()
    code, err = finish(start(run, "--resume"))
    assert code == 0, err[-2000:]
    assert "resumed from" in err and "step_000000009" in err
    assert_same_run(run, reference)


@pytest.mark.slow
def test_sigterm_checkpoints_and_exits_cleanly(reference, tmp_path):
    run = tmp_path / "run"
    proc = start(run)
    while not (run / "checkpoints" / "step_000000005.safetensors").exists() and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    assert code == 128 + signal.SIGTERM and "stopped: SIGTERM at step" in err and "--resume" in err
    assert "Traceback" not in err and "error:" not in err
    code, err = finish(start(run, "--resume"))
    assert code == 0, err[-2000:]
    for key, value in weights(reference).items():
        assert torch.equal(weights(run)[key], value), key
