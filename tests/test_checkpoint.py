"""Checkpoints: round trip, atomicity leftovers, corrupt/foreign/pickled files refused, wrong family."""

import os
import pickle

import pytest
import torch

from conftest import tiny_config
from genlab.core.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from genlab.errors import CheckpointError
from genlab.registry import build_model
from genlab.runs import load_run, load_state_into
from genlab.train.loop import train


def test_round_trip_keeps_structure_and_types(tmp_path):
    state = {"a": torch.arange(3), "opt": {"state": {0: {"step": torch.tensor(2.0)}}, "groups": [{"betas": (0.9, 0.99)}]},
             "none": None, "flag": True, "text": "x"}
    back = load_checkpoint(save_checkpoint(tmp_path / "step_000000001.safetensors", state))
    assert torch.equal(back["a"], state["a"]) and back["opt"]["groups"][0]["betas"] == (0.9, 0.99)
    assert list(back["opt"]["state"]) == [0] and back["none"] is None and back["flag"] is True


def test_leftover_tmp_files_are_ignored(tmp_path):
    save_checkpoint(tmp_path / "checkpoints" / "step_000000001.safetensors", {"a": torch.ones(1)})
    (tmp_path / "checkpoints" / "step_000000002.safetensors.tmp").write_bytes(b"half a file")
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000000001.safetensors"]


def test_truncated_and_foreign_files_are_refused(tmp_path):
    path = save_checkpoint(tmp_path / "c.safetensors", {"a": torch.ones(100)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not a genlab checkpoint"):
        load_checkpoint(tmp_path / "other.safetensors")
    save_file({"w": torch.ones(2)}, str(tmp_path / "newer.safetensors"),
              metadata={"format": "genlab-checkpoint-v9", "state": "{}"})
    with pytest.raises(CheckpointError, match="another genlab version.*genlab-checkpoint-v9.*genlab-checkpoint-v1"):
        load_checkpoint(tmp_path / "newer.safetensors")


def test_a_checkpoint_written_before_the_family_contract_loads(tmp_path):
    """Checkpoints without extra state, sources or version (genlab before the contract), preset 'seed'."""
    from conftest import tiny_config
    from genlab.runs import load_run
    from genlab.train.loop import train

    run = train(tiny_config("vae-mnist", "train.epochs=1"), tmp_path / "run")
    path = list_checkpoints(run)[-1]
    state = load_checkpoint(path)
    for key in ("extra", "sources", "genlab_version"):
        del state[key]
    state["config"]["model"]["preset"] = "seed"
    save_checkpoint(path, state)
    config, model, _ = load_run(run)
    assert config.model.preset == "lab-report" and model.sample(2).shape == (2, 1, 28, 28)
    train(tiny_config("vae-mnist", "train.epochs=2"), run, resume=True)  # and it resumes
    assert len(list_checkpoints(run)) == 2


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = "/tmp/genlab-pickle-payload-ran"


def test_a_pickle_with_a_payload_is_refused_and_never_runs(tmp_path):
    if os.path.exists(MARKER):
        os.remove(MARKER)
    evil = tmp_path / "runs" / "checkpoints" / "step_000000001.safetensors"
    evil.parent.mkdir(parents=True)
    evil.write_bytes(pickle.dumps({"model": _Payload()}))
    torch.save({"x": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError):
        load_checkpoint(evil)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(CheckpointError):
        load_run(tmp_path / "runs")
    assert not os.path.exists(MARKER)


def test_checkpoint_of_another_family_or_shape_says_so(tmp_path):
    run = train(tiny_config("vae-mnist", "train.epochs=1"), tmp_path / "vae")
    path = list_checkpoints(run)[-1]
    with pytest.raises(CheckpointError, match="holds a 'vae' model; this config trains 'cvae'"):
        load_state_into(build_model(tiny_config("cvae-mnist")), load_checkpoint(path), path, "cvae")
    with pytest.raises(CheckpointError, match="shape"):
        load_state_into(build_model(tiny_config("vae-mnist", "model.latent_dim=3")), load_checkpoint(path), path, "vae")
