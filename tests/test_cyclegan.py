"""CycleGAN: configs and presets, the image pool, jitter, the lr schedule, training through the loop,
exact resume with both pools, metrics, figures, `genlab translate`, and two processes."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from conftest import CONFIGS, losses, weights, write_unpaired_folders
from genlab.adversarial.losses import lsgan_d_loss
from genlab.bench.plain import PLAIN_STEPS
from genlab.cli import app
from genlab.config import load_config
from genlab.core.checkpoint import list_checkpoints, load_checkpoint
from genlab.core.noise import SharedNoise
from genlab.data.transforms import random_jitter
from genlab.errors import ConfigError, GenlabError
from genlab.eval.translation_metrics import paired_errors
from genlab.models.cyclegan import CycleGAN, ImagePool
from genlab.registry import build_model
from genlab.runs import load_run
from genlab.train.loop import train

LOSS_NAMES = ["D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Domain A reddish (10 train), domain B bluish (6 train): sizes differ, images not square."""
    return write_unpaired_folders(tmp_path_factory.mktemp("horse2zebra"))


def tiny(root, *extra):
    return load_config(CONFIGS / "cyclegan-folder.yaml", [
        f"data.root={root}", "data.image_size=32", "model.ngf=4", "model.ndf=4", "model.pool_size=3",
        "train.batch_size=2", "train.epochs=2", "train.progress=false", "train.checkpoint_every_steps=1",
        "train.keep_checkpoints=100", "eval.batch_size=8", *extra])


def test_presets_reproduce_the_seed_and_paper_parameter_counts():
    seed = build_model(load_config(CONFIGS / "cyclegan-emoji.yaml", [
        "model.preset=seed", "model.generator=null", "model.discriminator=null", "model.ngf=64", "model.ndf=64",
        "data.image_size=256"])).parameter_counts()
    assert seed["D_A"] == seed["D_B"] == 2_766_529  # the seed's PatchGAN table at 256×256×3
    assert seed["G_A"] == 30_618_691
    paper = build_model(load_config(CONFIGS / "cyclegan-emoji.yaml", [
        "model.generator=resnet_9", "model.ngf=64", "model.ndf=64", "data.image_size=256"])).parameter_counts()
    assert paper["G_A"] == 11_378_179 and paper["D_A"] == 2_764_737


def test_config_errors_name_the_key(root):
    with pytest.raises(ConfigError, match="model.lambda_identity"):
        build_model(tiny(root, "data.channels_b=1"))  # identity loss cannot compare 3- with 1-channel images
    with pytest.raises(ConfigError, match="model.generator"):
        tiny(root, "model.generator=resnet_7")
    with pytest.raises(ConfigError, match="train.lr_schedule"):
        build_model(tiny(root, "train.lr_schedule=cosine")).set_lr_schedule("cosine", 10)
    with pytest.raises(ConfigError, match="data.image_size"):
        build_model(tiny(root, "data.image_size=34"))  # not a multiple of the ResNet generator's stride, 4
    with pytest.raises(ConfigError, match="data.image_size.*at least 32"):
        build_model(tiny(root, "data.image_size=16"))
    with pytest.raises(ConfigError, match="model.diffaug.*translation"):
        tiny(root, "model.diffaug=translation,blur")


def test_diffaug_reaches_the_discriminators_in_both_steps(root):
    """DiffAugment changes what both Ds see (so the losses), in the G and the D step, and trains finitely."""
    def first_losses(*extra):
        model = build_model(tiny(root, *extra))
        model.set_lr_schedule("constant", 10)
        model.noise = SharedNoise(0)
        torch.manual_seed(0)
        batch = {"image": torch.rand(2, 3, 32, 32) * 2 - 1, "image_b": torch.rand(2, 3, 32, 32) * 2 - 1}
        return model.train_step(batch, 0)

    plain, augmented = first_losses(), first_losses("model.diffaug=translation,cutout")
    assert all(np.isfinite(v) for v in augmented.values())
    for name in ("G_A", "G_B", "D_A", "D_B"):
        assert augmented[name] != plain[name], name
    for name in ("cycle_A", "cycle_B", "idt_A", "idt_B"):  # G's first forward pass does not involve D
        assert augmented[name] == plain[name], name


@pytest.mark.parametrize("generator", ["resnet_6", "unet"])
def test_train_step_gradients_equal_the_reference_step(root, generator):
    """genlab's step (both generators' second passes and each D's real and fake as one batch) gives
    the gradients of the reference's separate passes with its MSE criterion (bench.plain), with the
    paper's weights: adversarial 1, cycle λ, identity λ·λ_id, D halved. Each ``.grad`` after the step
    is its network's gradient at the initial weights (G is stepped after its own backward, and D
    sees G's fakes from before that step), so the two steps can be compared on the gradients."""
    def gradients(step_of):
        cfg = tiny(root, f"model.generator={generator}", "model.jitter=false",
                   "model.pool_size=0", "train.precision=fp32")
        model = build_model(cfg)
        model.noise = SharedNoise(0)
        torch.manual_seed(0)
        batch = {"image": torch.rand(3, 3, 32, 32) * 2 - 1, "image_b": torch.rand(3, 3, 32, 32) * 2 - 1}
        step_of(model, cfg)(batch)
        return {name: {key: p.grad for key, p in net.named_parameters()} for name, net in model.networks().items()}

    ours = gradients(lambda model, cfg: lambda batch: model.train_step(batch, 0))
    reference = gradients(PLAIN_STEPS["cyclegan"])
    for name, grads in reference.items():
        assert ours[name].keys() == grads.keys()
        # biases just before an instance norm have a true gradient of 0: float noise, bounded by the net's scale
        scale = max(float(g.abs().max()) for g in grads.values())
        for key, grad in grads.items():
            torch.testing.assert_close(ours[name][key], grad, rtol=1e-4, atol=1e-4 * scale, msg=f"{name}.{key}")


def test_image_pool_fills_then_swaps_half_the_time():
    pool, noise = ImagePool(4), SharedNoise(0)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first, noise), first) and len(pool.images) == 4  # filling: returned as given
    new = torch.arange(100.0, 500.0).view(400, 1, 1, 1)
    out = pool.query(new, noise)
    from_pool = out != new
    assert 0.4 < float(from_pool.float().mean()) < 0.6  # about half are older images from the pool
    assert set(out[from_pool].tolist()) <= set(range(0, 500))  # ... that were stored before
    assert torch.equal(ImagePool(0).query(new, noise), new)  # no pool: D sees the current batch


def test_jitter_keeps_shape_draws_from_shared_noise_and_is_off_at_ratio_one():
    x = torch.rand(6, 3, 16, 16)
    assert random_jitter(x, SharedNoise(1)).shape == x.shape
    assert torch.equal(random_jitter(x, SharedNoise(1), ratio=1.0, flip=False), x)
    one = random_jitter(x, SharedNoise(5))
    ranks = [random_jitter(x[r::2], SharedNoise(5, rank=r, world_size=2)) for r in range(2)]
    assert torch.equal(one[0::2], ranks[0]) and torch.equal(one[1::2], ranks[1])


def test_per_patch_logits_take_per_image_targets():
    logits = torch.randn(3, 1, 4, 4)
    targets = torch.tensor([1.0, 0.5, 0.0])
    manual = 0.5 * (logits - targets.view(3, 1, 1, 1)).pow(2).mean() + 0.5 * logits.pow(2).mean()
    torch.testing.assert_close(lsgan_d_loss(logits, logits, targets, torch.zeros(3)), manual)


@pytest.mark.filterwarnings(r"ignore:Detected call of `lr_scheduler.step\(\)` before")
def test_learning_rate_is_constant_then_decays_linearly_to_zero(root):
    model = build_model(tiny(root, "train.epochs=4", "model.decay_epochs=2"))
    model.set_lr_schedule("constant", total_steps=8)
    lrs = []
    for _ in range(8):
        lrs.append(model.g_optimizer.param_groups[0]["lr"])
        for s in model.schedulers().values():
            s.step()
    assert lrs[:4] == [2e-4] * 4
    assert lrs[4:] == pytest.approx([2e-4, 1.5e-4, 1e-4, 0.5e-4])
    assert model.d_optimizer.param_groups[0]["lr"] == pytest.approx(0.0)


def test_train_preview_figures_eval_and_exact_resume_with_pools(tmp_path, root):
    full = train(tiny(root), tmp_path / "full")  # 5 steps per epoch (10 A images, batch 2)
    records = losses(full)
    assert all(np.isfinite(records[-1][f"train/{k}"]) for k in LOSS_NAMES)
    for direction in ("AtoB", "BtoA"):
        with Image.open(full / "samples" / f"epoch_0002_{direction}.png") as grid:
            assert grid.size[0] > 3 * 32  # real | translated | reconstructed
    pools = load_checkpoint(list_checkpoints(full)[-1])["extra"][0]
    assert pools["pool_A"].shape == (3, 3, 32, 32) and pools["pool_B"].shape == (3, 3, 32, 32)

    part = tmp_path / "part"  # killed in the middle of epoch 2: keep checkpoints of steps 1..7
    shutil.copytree(full, part)
    for ckpt in list_checkpoints(part)[7:]:
        ckpt.unlink()
    train(tiny(root), part, resume=True)
    assert losses(part) == losses(full)
    for key, value in weights(full).items():
        assert torch.equal(weights(part)[key], value), key
    resumed = load_checkpoint(list_checkpoints(part)[-1])["extra"][0]
    assert all(torch.equal(resumed[k], pools[k]) for k in pools)

    from genlab.analysis.run_figures import write_figures
    from genlab.eval.run_metrics import evaluate_run

    assert sorted(p.name for p in write_figures(full)) == ["cycle_AtoB.png", "cycle_BtoA.png", "loss_curves.png"]
    metrics = evaluate_run(full)["metrics"]
    assert 0 <= metrics["cycle_l1_AtoB"] <= 1 and 0 <= metrics["cycle_l1_BtoA"] <= 1
    assert "l1_AtoB" not in metrics and "not aligned" in metrics["protocol"]["skipped"]["paired"]


def test_grayscale_domain_b(tmp_path, root):
    run = train(tiny(root, "data.channels_b=1", "model.lambda_identity=0", "train.epochs=1"), tmp_path / "grey")
    _, model, _ = load_run(run)
    assert model.translate(torch.rand(1, 3, 32, 32), "AtoB").shape == (1, 1, 32, 32)
    assert model.translate(torch.rand(1, 1, 32, 32), "BtoA").shape == (1, 3, 32, 32)


def test_paired_errors_of_a_perfect_and_a_wrong_translation():
    target = torch.rand(4, 3, 16, 16)
    perfect = paired_errors(target, target)
    assert perfect["l1"][0] == 0 and perfect["ssim"][0] == pytest.approx(1.0)
    wrong = paired_errors(1 - target, target)
    assert wrong["l1"][0] > 0.2 and wrong["ssim"][0] < 0.5 and wrong["psnr"][0] < perfect["psnr"][0]


def test_translate_command(tmp_path, root):
    run = train(tiny(root, "train.epochs=1"), tmp_path / "run")
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(inputs / "wide.jpg")
    Image.fromarray(np.zeros((21, 13), np.uint8)).save(inputs / "sub" / "grey.png")
    (inputs / "sub" / "broken.png").write_bytes(b"not an image")
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(app, ["translate", str(run), str(inputs), "--direction", "AtoB", "-o", str(out)])
    assert isinstance(result.exception, GenlabError) and "1 of 3" in str(result.exception)
    assert "broken.png" in result.output  # the bad file is named
    with Image.open(out / "wide.jpg") as a, Image.open(out / "sub" / "grey.png") as b:
        assert a.size == (50, 30) and b.size == (13, 21)  # each output has its input's size and name
    before = (out / "wide.jpg").read_bytes()
    result = runner.invoke(app, ["translate", str(run), str(inputs / "wide.jpg"), "--direction", "BtoA", "-o", str(out)])
    assert isinstance(result.exception, GenlabError) and "--overwrite" in str(result.exception)
    assert (out / "wide.jpg").read_bytes() == before  # refused before any work
    result = runner.invoke(app, ["translate", str(run), str(inputs / "wide.jpg"), "--direction", "BtoA", "--native",
                                 "--overwrite", "-o", str(out)])
    assert result.exit_code == 0, result.output
    with Image.open(out / "wide.jpg") as a:
        assert a.size == (50, 30)
    result = runner.invoke(app, ["translate", str(run), str(inputs), "--direction", "sideways", "-o", str(out)])
    assert "AtoB, BtoA" in str(result.exception)
    result = runner.invoke(app, ["translate", str(run), str(inputs), "--direction", "AtoB", "-o", str(out / "wide.jpg")])
    assert isinstance(result.exception, GenlabError) and "is a file; give a folder" in str(result.exception)
    single = tmp_path / "single.png"  # a new -o named like an image is refused, not made a folder of that name
    result = runner.invoke(app, ["translate", str(run), str(inputs / "wide.jpg"), "--direction", "AtoB", "-o", str(single)])
    assert isinstance(result.exception, GenlabError) and "looks like an image file name" in str(result.exception)
    assert not single.exists()
    found = list_checkpoints(run)  # --checkpoint translates with the chosen step; without it, with the newest
    made = {}
    for name, extra in (("first", ["--checkpoint", str(found[0])]), ("last", ["--checkpoint", str(found[-1])]),
                        ("newest", [])):
        result = runner.invoke(app, ["translate", str(run), str(inputs / "wide.jpg"), "--direction", "AtoB", *extra,
                                     "-o", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        made[name] = (tmp_path / name / "wide.jpg").read_bytes()
    assert made["last"] == made["newest"] != made["first"]
    result = runner.invoke(app, ["sample", str(run), "--n", "4", "-o", str(tmp_path / "x.png")])
    assert isinstance(result.exception, GenlabError) and "genlab translate" in str(result.exception)
    originals = {p: p.read_bytes() for p in inputs.rglob("*") if p.is_file()}
    for target, words in ((inputs, "is the input folder"), (inputs / "sub" / "out", "inside the input folder"),
                          (inputs / "sub", "is an input")):  # the last: a file input, -o its own folder
        given = [str(inputs)] if target != inputs / "sub" else [str(inputs / "sub" / "grey.png")]
        result = runner.invoke(app, ["translate", str(run), *given, "--direction", "AtoB", "--overwrite", "-o", str(target)])
        assert isinstance(result.exception, GenlabError) and words in str(result.exception), (target, result.output)
    assert {p: p.read_bytes() for p in inputs.rglob("*") if p.is_file()} == originals  # nothing replaced or added
    Image.fromarray(np.full((9, 12, 3), 200, np.uint8)).save(tmp_path / "pic.gif")
    result = runner.invoke(app, ["translate", str(run), str(tmp_path / "pic.gif"), "--direction", "AtoB", "-o", str(out)])
    assert result.exit_code == 0, result.output
    with Image.open(out / "pic.gif") as gif:  # a .gif output is a GIF, not PNG bytes under that name
        assert gif.format == "GIF" and gif.size == (12, 9)


def test_native_translation_pads_to_the_stride_and_crops_back(root):
    model: CycleGAN = build_model(tiny(root)).eval()
    x = torch.rand(1, 3, 19, 23)
    assert model.translate(x, "AtoB", native=True).shape == (1, 3, 19, 23)
    assert model.translate(x, "BtoA").shape == (1, 3, 19, 23)


@pytest.mark.slow
def test_two_processes_train_and_resume(tmp_path, root):
    """Gloo, 2 processes × batch 1: trains, checkpoints each rank's pools, resumes."""
    args = [str(CONFIGS / "cyclegan-folder.yaml"), f"data.root={root}", "data.image_size=32", "model.ngf=4",
            "model.ndf=4", "model.pool_size=3", "model.decay_epochs=0", "train.batch_size=1", "train.epochs=1",
            "train.progress=false", "--no-figures", "--run-dir", str(tmp_path / "ddp")]  # constant lr: may train longer
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "genlab", "train"]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    extra = load_checkpoint(list_checkpoints(tmp_path / "ddp")[-1])["extra"]
    assert len(extra) == 2 and all(len(e["pool_A"]) == 3 for e in extra)  # one pool per process
    proc = subprocess.run([*cmd, *args[:-3], "train.epochs=2", "--no-figures", "--run-dir", str(tmp_path / "ddp"),
                           "--resume"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from" in proc.stderr and len(losses(tmp_path / "ddp")) == 2


def test_resume_refuses_another_number_of_epochs_under_the_decay(tmp_path, root):
    run = train(tiny(root, "train.epochs=1", "model.decay_epochs=1"), tmp_path / "run")
    saved = (run / "config.yaml").read_text()
    with pytest.raises(GenlabError, match="train.epochs=1 under a learning-rate schedule"):
        train(tiny(root, "train.epochs=3", "model.decay_epochs=1"), run, resume=True)
    assert (run / "config.yaml").read_text() == saved  # a refused resume changes nothing
    train(tiny(root, "train.epochs=1", "model.decay_epochs=1"), run, resume=True)  # finished: the advice fits the decay
    assert f"nothing to train; to train longer, start a new run with train.init_from={run}" in (run / "train.log").read_text()


def test_log_names_both_domains_sizes_and_a_missing_test_split(tmp_path, root):
    no_test = tmp_path / "no-test"
    shutil.copytree(root, no_test, ignore=shutil.ignore_patterns("testA", "testB"))
    run = train(tiny(no_test, "train.epochs=1"), tmp_path / "run")
    log = (run / "train.log").read_text()
    assert "training on 10 A / 6 B images" in log and "has no test split" in log


def test_a_relative_data_root_is_saved_absolute_so_eval_works_from_any_folder(tmp_path, root, monkeypatch):
    from genlab.eval.run_metrics import evaluate_run

    data = tmp_path / "data"
    shutil.copytree(root, data)
    monkeypatch.chdir(tmp_path)
    run = train(tiny("data", "train.epochs=1"), tmp_path / "run")  # data.root given relative to here
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["root"] == str(data)
    train(tiny("data", "train.epochs=1"), run, resume=True)  # the same relative override resumes it
    monkeypatch.chdir(run)
    assert 0 <= evaluate_run(run)["metrics"]["cycle_l1_AtoB"] <= 1
    data.rename(tmp_path / "moved")  # data moved away: the message says so, not "no test split"
    with pytest.raises(GenlabError, match=f"data.root={data}: no such folder; the data has moved"):
        evaluate_run(run)
