"""The training loop: outputs, exact resume (epoch and mid-epoch), refusals, non-finite losses."""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

from conftest import CONFIGS, assert_same_weights, losses, tiny_config, weights
from genlab.config import load_config
from genlab.core.checkpoint import list_checkpoints, load_checkpoint
from genlab.errors import GenlabError, TrainingDiverged
from genlab.models.base import GenerativeModel
from genlab.runs import load_run
from genlab.train.loop import train


def test_run_directory_contents(tmp_path):
    run = train(tiny_config("cvae-mnist", "train.epochs=2"), tmp_path / "run")
    assert (run / "config.yaml").is_file()
    assert [p.name for p in list_checkpoints(run)] == ["step_000000004.safetensors", "step_000000008.safetensors"]
    records = losses(run)
    assert [r["epoch"] for r in records] == [1, 2]
    for key in ("train/recon", "train/kl", "train/loss", "test/recon", "test/kl", "test/loss"):
        assert all(r[key] > 0 for r in records), key
    assert (run / "samples" / "epoch_0001.png").is_file() and (run / "samples" / "epoch_0002.png").is_file()
    assert any((run / "tensorboard").iterdir())


def test_resume_after_an_epoch_equals_uninterrupted(tmp_path):
    full = train(tiny_config("vae-mnist", "train.epochs=3"), tmp_path / "full")
    part = train(tiny_config("vae-mnist", "train.epochs=1"), tmp_path / "part")
    train(tiny_config("vae-mnist", "train.epochs=3"), part, resume=True)
    assert losses(part) == losses(full)
    assert_same_weights(part, full)


def test_resume_mid_epoch_equals_uninterrupted(tmp_path):
    """Checkpoints every step; dropping the newest ones simulates a kill in the middle of epoch 2."""
    extra = ("train.epochs=2", "train.checkpoint_every_steps=1", "train.keep_checkpoints=100", "model.dropout=0.3")
    full = train(tiny_config("vae-mnist", *extra), tmp_path / "full")
    part = tmp_path / "part"
    shutil.copytree(full, part)
    for ckpt in list_checkpoints(part)[6:]:  # keep steps 1..6: epoch 2, batch 2 of 4
        ckpt.unlink()
    train(tiny_config("vae-mnist", *extra), part, resume=True)
    assert losses(part) == losses(full)
    assert_same_weights(part, full)


def test_existing_run_is_not_overwritten_silently(tmp_path):
    run = train(tiny_config("vae-mnist", "train.epochs=1"), tmp_path / "run")
    with pytest.raises(GenlabError, match="--resume"):
        train(tiny_config("vae-mnist", "train.epochs=1"), run)
    with pytest.raises(GenlabError, match="model.latent_dim"):
        train(tiny_config("vae-mnist", "train.epochs=2", "model.latent_dim=3"), run, resume=True)
    saved = weights(run)  # --overwrite of the run a config reads from (e.g. a Stage-I run) deletes nothing
    with pytest.raises(GenlabError, match=f"--overwrite: train.init_from={run} is in the run directory"):
        train(tiny_config("vae-mnist", "train.epochs=1", f"train.init_from={run}"), run, overwrite=True)
    assert all(torch.equal(saved[k], w) for k, w in weights(run).items())
    before = {path.relative_to(run): path.read_bytes() for path in run.rglob("*") if path.is_file()}
    with pytest.raises(GenlabError, match="no such folder"):  # an --overwrite whose setup fails gives the old run back
        train(tiny_config("vae-mnist", "train.epochs=1", "data.name=folder", f"data.root={tmp_path / 'nowhere'}"), run,
              overwrite=True)
    assert {path.relative_to(run): path.read_bytes() for path in run.rglob("*") if path.is_file()} == before
    train(tiny_config("vae-mnist", "train.epochs=1", "seed=5"), run, overwrite=True)
    assert len(losses(run)) == 1 and not (run / ".overwritten").exists()
    # another family: its name leads the list of differences, and the ones cut off are counted
    with pytest.raises(GenlabError, match=r"with a different experiment .*: model\.family: 'vae' -> 'gan'; name: .*"
                                          r"; and \d+ more \(only train\.epochs"):
        train(load_config(CONFIGS / "dcgan-mnist.yaml", ["train.epochs=1"]), run, resume=True)
    user = tmp_path / "notes"  # a folder of the user's own files is not called a run, and is left alone
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    with pytest.raises(GenlabError, match="holds files but no genlab run"):
        train(tiny_config("vae-mnist", "train.epochs=1"), user)
    assert [p.name for p in user.iterdir()] == ["notes.txt"]


def test_resuming_a_finished_run_says_there_is_nothing_to_train(tmp_path):
    run = train(tiny_config("vae-mnist", "train.epochs=1"), tmp_path / "run")
    before = weights(run)
    train(tiny_config("vae-mnist", "train.epochs=1"), run, resume=True)
    assert "already trained its train.epochs=1" in (run / "train.log").read_text()
    assert len(losses(run)) == 1 and all(torch.equal(before[k], w) for k, w in weights(run).items())


def test_resume_of_a_run_saved_before_a_key_existed(tmp_path):
    """A config.yaml written by an older genlab lacks newer keys; they count at their defaults."""
    run = train(tiny_config("vae-mnist", "train.epochs=1"), tmp_path / "run")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    del saved["train"]["sync_batchnorm"]
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    train(tiny_config("vae-mnist", "train.epochs=2"), run, resume=True)
    assert len(losses(run)) == 2
    saved["train"]["no_such_key"] = 1
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(GenlabError, match="not valid for this genlab version.*no_such_key"):
        train(tiny_config("vae-mnist", "train.epochs=3"), run, resume=True)


def test_nonfinite_loss_stops_with_step_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    original = GenerativeModel.step_optimizer

    def poisoned(self, name, loss, scaler=None):
        if self._poison_at == 6:
            loss = loss * float("nan")
        self._poison_at += 1
        return original(self, name, loss)

    monkeypatch.setattr(GenerativeModel, "_poison_at", 1, raising=False)
    monkeypatch.setattr(GenerativeModel, "step_optimizer", poisoned)
    with pytest.raises(TrainingDiverged, match=r"step 6 \(epoch 2, batch 2\).*'vae' is nan.*continue it with "
                                               r"--resume .*train.on_nonfinite=skip"):
        train(tiny_config("vae-mnist", "train.epochs=2"), tmp_path / "run")
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step_000000004.safetensors"]
    monkeypatch.setattr(GenerativeModel, "_poison_at", 6, raising=False)  # the resumed run's first step is poisoned
    resumed = train(tiny_config("vae-mnist", "train.epochs=2", "train.on_nonfinite=skip"), tmp_path / "run", resume=True)
    assert losses(resumed)[-1]["skipped_steps"] == 1

    monkeypatch.setattr(GenerativeModel, "_poison_at", 1, raising=False)
    run = train(tiny_config("vae-mnist", "train.epochs=2", "train.on_nonfinite=skip"), tmp_path / "skip")
    assert losses(run)[-1]["skipped_steps"] == 1
    assert all(torch.isfinite(w).all() for w in weights(run).values())


def test_finite_loss_with_nan_gradient_stops_before_the_weights_change(tmp_path, monkeypatch):
    """A finite loss can have a NaN gradient (bf16 overflow); the step is refused like a NaN loss."""
    original = GenerativeModel.step_optimizer

    def poisoned(self, name, loss, scaler=None):
        if self._poison_at == 3:  # finite value, NaN gradient: d/dx of sqrt(x - x) at 0 is inf * 0
            zero = next(self.parameters()).sum() * 0.0
            loss = loss + (zero - zero).clamp_min(0.0).sqrt() * 0.0
        self._poison_at += 1
        return original(self, name, loss)

    monkeypatch.setattr(GenerativeModel, "_poison_at", 1, raising=False)
    monkeypatch.setattr(GenerativeModel, "step_optimizer", poisoned)
    with pytest.raises(TrainingDiverged, match=r"step 3 \(epoch 1, batch 3\).*gradient of loss 'vae' \(which is "
                                               r"[0-9.]+\) has norm nan"):
        train(tiny_config("vae-mnist", "train.epochs=2", "train.checkpoint_every_steps=1"), tmp_path / "run")
    assert all(torch.isfinite(w).all() for w in weights(tmp_path / "run").values())


def test_precision_auto_is_resolved_from_the_cpu_and_recorded(tmp_path, monkeypatch):
    from genlab.core import hardware

    for features, expected in ((("AVX2",), "fp32"), (("AVX2", "AVX-512", "AVX512_BF16"), "bf16"),
                               (("AVX2", "AVX-512", "AMX"), "bf16")):
        monkeypatch.setattr(hardware, "cpu_info", lambda f=features: hardware.CPUInfo("test CPU", 2, f))
        assert hardware.resolve_precision("auto", torch.device("cpu"))[0] == expected
        assert hardware.resolve_precision("fp32", torch.device("cpu"))[0] == "fp32"
    monkeypatch.setattr(hardware, "cpu_info", lambda: hardware.CPUInfo("test CPU", 2, ("AVX2",)))
    # asked for, bf16 is kept, and the reason says it is emulated on this CPU
    precision, why = hardware.resolve_precision("bf16", torch.device("cpu"))
    assert precision == "bf16" and "train.precision=bf16" in why and "emulated, slower than fp32" in why
    run = train(tiny_config("vae-mnist", "train.epochs=1"), tmp_path / "run")
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["precision"] == "fp32"
    assert "precision fp32: the CPU has no native bf16" in (run / "train.log").read_text()


@pytest.mark.parametrize("env, hardware_left", [
    ({"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}, {"AVX2"}),
    ({"ONEDNN_MAX_CPU_ISA": "avx512_core"}, {"AVX2", "AVX-512"}),
    ({"ONEDNN_MAX_CPU_ISA": "AVX10_1_512_AMX"}, {"AVX2", "AVX-512", "AVX512_BF16", "AMX"}),
])
def test_isa_caps_of_the_environment_limit_the_features_auto_uses(env, hardware_left):
    """A capped process (e.g. an AVX-512/AMX machine run as an AVX2-only one) sees only what the caps leave."""
    code = ("import json, torch; from genlab.core.hardware import cpu_info, resolve_precision; i = cpu_info(); "
            "print(json.dumps([i.features, i.capped, i.caps, i.describe(), resolve_precision('auto', torch.device('cpu'))]))")
    clean = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")}
    out = subprocess.run([sys.executable, "-c", code], env=clean | env, capture_output=True, text=True, check=True)
    features, capped, caps, line, (precision, why) = json.loads(out.stdout)
    hardware = set(features) | set(capped)
    assert set(features) == hardware & hardware_left and set(capped) == hardware - hardware_left
    assert caps and all(cap.split("=")[0] in env for cap in caps) and "capped by" in line
    native = {"AVX512_BF16", "AMX"} & set(features)
    assert precision == ("bf16" if native else "fp32")
    if {"AVX512_BF16", "AMX"} & set(capped):
        assert "leaves no native bf16" in why


def test_cosine_schedule_resumes_exactly(tmp_path):
    """A kill after step 3 of 8 (dropping newer checkpoints) and --resume give the uninterrupted run."""
    extra = ("train.epochs=2", "train.lr_schedule=cosine", "train.lr=0.01", "train.checkpoint_every_steps=1",
             "train.keep_checkpoints=100")
    full = train(tiny_config("vae-mnist", *extra), tmp_path / "full")
    part = tmp_path / "part"
    shutil.copytree(full, part)
    for ckpt in list_checkpoints(part)[3:]:
        ckpt.unlink()
    train(tiny_config("vae-mnist", *extra), part, resume=True)
    assert losses(part) == losses(full)
    assert_same_weights(part, full)
    constant = train(tiny_config("vae-mnist", *extra[:1], "train.lr=0.01"), tmp_path / "constant")
    assert losses(constant)[0]["train/loss"] != losses(full)[0]["train/loss"]  # the schedule acts in epoch 1
    with pytest.raises(GenlabError, match=r"train.epochs: 2 -> 3 with train.lr_schedule=cosine.*train.init_from"):
        train(tiny_config("vae-mnist", *extra[1:], "train.epochs=3"), part, resume=True)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before:UserWarning")  # no optimizer steps here
def test_cosine_schedule_multiplies_each_optimizers_lr():
    from conftest import CONFIGS
    from genlab.config import load_config
    from genlab.registry import build_model

    model = build_model(load_config(CONFIGS / "fcgan-mnist.yaml", ["model.hidden=[8]", "model.d_lr=0.004"]))
    model.set_lr_schedule("cosine", total_steps=4)
    lrs = []
    for _ in range(4):
        lrs.append({n: o.param_groups[0]["lr"] for n, o in model.optimizers().items()})
        for s in model.schedulers().values():
            s.step()
    final = {n: o.param_groups[0]["lr"] for n, o in model.optimizers().items()}
    assert lrs[0]["discriminator"] == pytest.approx(0.004)
    assert lrs[2]["discriminator"] == pytest.approx(0.002)
    assert lrs[2]["generator"] == pytest.approx(lrs[0]["generator"] / 2)
    assert final["discriminator"] == pytest.approx(0.0, abs=1e-12) and final["generator"] == pytest.approx(0.0, abs=1e-12)
    model.set_lr_schedule("constant", total_steps=4)
    assert model.schedulers() == {}


def test_init_from_starts_from_another_runs_weights(tmp_path):
    source = train(tiny_config("vae-mnist", "train.epochs=1"), tmp_path / "source")
    tuned = train(tiny_config("vae-mnist", "train.epochs=1", "model.dropout=0", f"train.init_from={source}",
                              "train.lr=1e-12"), tmp_path / "tuned")
    for key, value in weights(source).items():  # an lr of 1e-12 leaves the copied weights as they were
        assert torch.allclose(weights(tuned)[key], value, atol=1e-8), key
    assert "initialised weights from" in (tuned / "train.log").read_text()
    # provenance: the source checkpoint and its digest, in sources.json and in every checkpoint
    (recorded,) = json.loads((tuned / "sources.json").read_text())
    source_checkpoint = list_checkpoints(source)[-1]
    assert recorded["checkpoint"] == source_checkpoint.name
    assert recorded["sha256"] == hashlib.sha256(source_checkpoint.read_bytes()).hexdigest()
    assert load_checkpoint(list_checkpoints(tuned)[-1])["sources"] == [recorded]
    with pytest.raises(GenlabError, match="holds a 'vae' model; this config trains 'cvae'"):
        train(tiny_config("cvae-mnist", "train.epochs=1", f"train.init_from={source}"), tmp_path / "wrong")
    with pytest.raises(GenlabError, match="run directory not found"):
        train(tiny_config("vae-mnist", "train.epochs=1", f"train.init_from={tmp_path / 'nowhere'}"), tmp_path / "x")
    # self-contained: the tuned run loads and samples with the source run gone
    shutil.rmtree(source)
    _, model, _ = load_run(tuned)
    assert model.sample(4, generator=torch.Generator().manual_seed(0)).shape == (4, 1, 28, 28)


@pytest.mark.slow
def test_compiled_training_matches_eager_and_resumes(tmp_path):
    """train.compile=true: the compiled step trains like the eager one (fp32: the same losses to
    float tolerance), logs its compile time, keeps the checkpoint's keys, and resumes."""
    extra = ("train.epochs=2", "train.precision=fp32")
    eager = train(tiny_config("vae-mnist", *extra), tmp_path / "eager")
    compiled = train(tiny_config("vae-mnist", *extra, "train.compile=true"), tmp_path / "compiled")
    for a, b in zip(losses(eager), losses(compiled)):
        assert a["train/loss"] == pytest.approx(b["train/loss"], rel=1e-4)
    assert "first step (compiling, train.compile)" in (compiled / "train.log").read_text()
    assert weights(compiled).keys() == weights(eager).keys()
    train(tiny_config("vae-mnist", "train.epochs=3", "train.precision=fp32", "train.compile=true"), compiled,
          resume=True)
    assert [r["epoch"] for r in losses(compiled)] == [1, 2, 3]


def test_compile_without_a_cpp_compiler_is_a_clear_error_before_the_run_dir(tmp_path, monkeypatch):
    """Without a C++ compiler inductor fails in the first step; genlab refuses up front, naming the
    option and the fix, and writes no run directory."""
    from torch._inductor import cpp_builder, exc

    def no_compiler():
        raise exc.InvalidCxxCompiler

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    with pytest.raises(GenlabError, match=r"train.compile=true: .*C\+\+ compiler.*apt-get install g\+\+"):
        train(tiny_config("vae-mnist", "train.compile=true"), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    train(tiny_config("vae-mnist", "train.epochs=1"), tmp_path / "eager")  # eager needs no compiler


def test_a_setup_error_leaves_no_run_behind_to_block_the_corrected_command(tmp_path):
    """A bad data folder fails before training; the run directory is left as it was (absent, or
    empty), so the same command with the folder fixed is not refused as "already holds a run"."""
    bad = ("data.name=folder", f"data.root={tmp_path / 'no-such-folder'}")
    with pytest.raises(GenlabError, match="no-such-folder"):
        train(tiny_config("vae-mnist", *bad), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(GenlabError, match="run directory not found"):
        train(tiny_config("vae-mnist", f"train.init_from={tmp_path / 'nowhere'}"), tmp_path / "empty")
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())
    run = train(tiny_config("vae-mnist", "train.epochs=1"), tmp_path / "empty")  # not refused
    assert (run / "config.yaml").is_file()


def test_a_class_conditioned_family_needs_labels_below_num_classes(tmp_path):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "images"  # an image folder has no labels
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((28, 28), 40 * i, np.uint8)).save(folder / f"{i}.png")
    with pytest.raises(GenlabError, match="conditioned on class labels, and data.name=folder has none"):
        train(tiny_config("cvae-mnist", "data.name=folder", f"data.root={folder}", "train.epochs=1"), tmp_path / "a")
    assert not (tmp_path / "a").exists()  # a refused setup leaves no run behind
    with pytest.raises(GenlabError, match=r"model.num_classes=3: the labels of data.name=mnist run from 0 to 9; "
                                          r"set model.num_classes=10"):
        train(tiny_config("cvae-mnist", "model.num_classes=3", "train.epochs=1"), tmp_path / "b")
