"""GAN family: seed parameter counts, Radford shapes, losses, every trick, training and exact resume."""

from __future__ import annotations

import copy
import math
import shutil

import pytest
import torch
from torch import nn

from conftest import CONFIGS, losses, weights
from genlab.adversarial.losses import (
    GAN_LOSSES,
    bce_d_loss,
    bce_g_loss,
    hinge_d_loss,
    hinge_g_loss,
    lsgan_d_loss,
    lsgan_g_loss,
)
from genlab.adversarial.tricks import (
    EMA,
    add_instance_noise,
    diff_augment,
    fake_targets,
    flip_targets,
    instance_noise_sigma,
    normal_draw,
    real_targets,
    uniform_draw,
)
from genlab.config import load_config
from genlab.core.checkpoint import list_checkpoints
from genlab.core.noise import SharedNoise
from genlab.data import datasets
from genlab.errors import ConfigError
from genlab.models.gan import GAN
from genlab.models.gan_nets import counted_size
from genlab.registry import build_model
from genlab.train import loop

#: a Radford DCGAN small enough for many train steps per second
SMALL = ["model.width=4", "data.image_size=16"]


def gan(*overrides: str, config: str = "dcgan-mnist", seed: int = 0) -> GAN:
    """A GAN with its SharedNoise, built the way the loop builds it (global seed first)."""
    torch.manual_seed(seed)
    model = build_model(load_config(CONFIGS / f"{config}.yaml", list(overrides)))
    model.noise = SharedNoise(seed)
    return model


def images(n: int = 8, size: int = 16, channels: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# --- architectures ------------------------------------------------------------------------------------

def test_seed_fcgan_parameter_counts():
    model = gan(config="fcgan-mnist")
    assert model.parameter_counts() == {"generator": 3_897_152, "discriminator": 3_868_673}
    assert model.generator(torch.zeros(2, 100)).shape == (2, 1, 56, 56)


def test_seed_dcgan_parameter_counts_include_batchnorm_running_stats():
    model = gan("model.preset=seed", "data.image_size=96", "data.channels=3")
    assert model.parameter_counts() == {"generator": 5_472_483, "discriminator": 734_977}
    # the seed's "Trainable params: 734,081" (Keras counts moving mean/var as non-trainable)
    assert sum(p.numel() for p in model.discriminator.parameters()) == 734_081
    assert model.config.model.latent_dim == 128


def test_seed_dcgan_shapes_and_size_refusals():
    model = gan("model.preset=seed", "model.width=2", "data.image_size=96", "data.channels=3")
    fake = model.generator(torch.randn(2, 128))
    assert fake.shape == (2, 3, 96, 96) and fake.abs().max() <= 1
    assert model.discriminator(fake).shape == (2,)
    with pytest.raises(ConfigError, match="data.image_size.*multiple of 16"):
        gan("model.preset=seed", "data.image_size=90")
    with pytest.raises(ConfigError, match="data.image_size.*32, 64"):
        gan("data.image_size=48")
    with pytest.raises(ConfigError, match="data.value_range"):
        gan("data.value_range=unit")
    with pytest.raises(ConfigError, match="model.preset"):
        gan("model.preset=radford", config="fcgan-mnist")


@pytest.mark.parametrize("size,channels,widths", [(32, 1, [32, 16, 8]), (64, 3, [64, 32, 16, 8])])
def test_radford_shapes(size, channels, widths):
    model = gan("model.width=8", f"data.image_size={size}", f"data.channels={channels}")
    convt = [m for m in model.generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [m.out_channels for m in convt] == [*widths, channels]
    convs = [m for m in model.discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [*reversed(widths), 1]
    bns = [m for m in model.discriminator.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == len(widths) - 1  # no BatchNorm on D's first layer (Radford et al. §3)
    z = torch.randn(3, 100)
    fake = model.generator(z)
    assert fake.shape == (3, channels, size, size) and fake.abs().max() <= 1
    assert model.discriminator(fake).shape == (3,)
    assert abs(float(convt[1].weight.detach().std()) - 0.02) < 0.002  # N(0, 0.02) init (§4)
    assert model.d_optimizer.defaults["betas"] == (0.5, 0.999)


def test_sample_is_in_unit_range_and_reproducible():
    model = gan(*SMALL).eval()
    a = model.sample(5, generator=torch.Generator().manual_seed(3))
    b = model.sample(5, generator=torch.Generator().manual_seed(3))
    assert a.shape == (5, 1, 16, 16) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, cond=torch.zeros(2, dtype=torch.long))


# --- losses -------------------------------------------------------------------------------------------

REAL, FAKE = torch.tensor([0.0, 2.0]), torch.tensor([0.5, -1.0])


def sp(x):  # softplus
    return math.log1p(math.exp(x))


def test_bce_losses_by_hand():
    expected = (sp(-0.0) + sp(-2.0)) / 2 + (sp(0.5) + sp(-1.0)) / 2
    assert bce_d_loss(REAL, FAKE).item() == pytest.approx(expected, rel=1e-6)
    # soft real target 0.9 at logit 2: -(0.9 log s(2) + 0.1 log s(-2))
    soft = -(0.9 * math.log(1 / (1 + math.exp(-2))) + 0.1 * math.log(1 / (1 + math.exp(2))))
    got = bce_d_loss(torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor([0.9]), torch.tensor([0.0]))
    assert got.item() == pytest.approx(soft + math.log(2), rel=1e-6)
    assert bce_g_loss(FAKE).item() == pytest.approx((sp(-0.5) + sp(1.0)) / 2, rel=1e-6)  # -log sigmoid


def test_lsgan_losses_by_hand():
    # D: 1/2 mean (D(x) - 1)^2 + 1/2 mean D(G(z))^2 ; G: 1/2 mean (D(G(z)) - 1)^2
    assert lsgan_d_loss(REAL, FAKE).item() == pytest.approx(0.5 * (1 + 1) / 2 + 0.5 * (0.25 + 1) / 2)
    assert lsgan_g_loss(FAKE).item() == pytest.approx(0.5 * (0.25 + 4) / 2)
    assert lsgan_d_loss(REAL, FAKE, torch.tensor([0.5, 0.5]), torch.zeros(2)).item() == pytest.approx(
        0.5 * (0.25 + 2.25) / 2 + 0.5 * (0.25 + 1) / 2)


def test_hinge_losses_by_hand():
    # D: mean relu(1 - D(x)) + mean relu(1 + D(G(z))) ; G: -mean D(G(z))
    assert hinge_d_loss(REAL, FAKE).item() == pytest.approx((1 + 0) / 2 + (1.5 + 0) / 2)
    assert hinge_g_loss(FAKE).item() == pytest.approx(0.25)
    # a soft target mixes the two hinges: t relu(1 - y) + (1 - t) relu(1 + y)
    assert hinge_d_loss(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.5]), torch.tensor([0.0])).item() \
        == pytest.approx(1.0 + 1.0)


def test_losses_accept_column_logits_and_give_gradients():
    for d_loss, g_loss in GAN_LOSSES.values():
        real = torch.randn(4, 1, requires_grad=True)
        fake = torch.randn(4, 1, requires_grad=True)
        (d_loss(real, fake, None, None) + g_loss(fake)).backward()
        assert real.grad.shape == (4, 1) and torch.isfinite(fake.grad).all()


# --- tricks -------------------------------------------------------------------------------------------

def test_label_smoothing_sets_real_targets():
    assert torch.equal(real_targets(4), torch.ones(4))
    assert torch.allclose(real_targets(4, 0.9), torch.full((4,), 0.9))
    soft = real_targets(1000, [0.7, 1.0], uniform_draw(torch.Generator().manual_seed(0)))
    assert soft.min() >= 0.7 and soft.max() < 1.0 and soft.std() > 0.05
    assert torch.equal(fake_targets(3), torch.zeros(3))  # one-sided


def test_noisy_labels_flip_about_p():
    targets = torch.ones(20000)
    flipped = flip_targets(targets, 0.2, uniform_draw(torch.Generator().manual_seed(0)))
    assert set(flipped.unique().tolist()) == {0.0, 1.0}
    assert abs(float((flipped == 0).float().mean()) - 0.2) < 0.015
    generator = torch.Generator().manual_seed(1)
    state = generator.get_state()
    assert flip_targets(targets, 0.0, uniform_draw(generator)) is targets
    assert torch.equal(generator.get_state(), state)  # p = 0 draws nothing


def test_instance_noise_anneals_linearly_and_changes_d_input():
    assert [instance_noise_sigma(s, 0.4, 100) for s in (0, 25, 50, 100, 150)] == pytest.approx([0.4, 0.3, 0.2, 0, 0])
    assert instance_noise_sigma(10_000, 0.4, 0) == 0.4  # no annealing
    x = torch.zeros(64, 1, 8, 8)
    noisy = add_instance_noise(x, 0.5, normal_draw(torch.Generator().manual_seed(0)))
    assert float(noisy.std()) == pytest.approx(0.5, rel=0.1)
    assert add_instance_noise(x, 0.0, None) is x

    seen = []
    for sigma in (0.0, 0.5):
        model = gan(*SMALL, f"model.instance_noise={sigma}", "model.instance_noise_anneal_steps=10")
        hook = model.discriminator.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach()))
        real = images()
        out = model.train_step({"image": real}, step=5)
        hook.remove()
        first = seen[-3]  # D's calls: real, fake (D step), fake (G step)
        assert torch.equal(first, real) == (sigma == 0.0)
        if sigma:
            assert out["noise_sigma"] == pytest.approx(0.25)
            assert float((first - real).std()) == pytest.approx(0.25, rel=0.15)


def _bn_batch_sizes(model, real):
    sizes = []
    bn = next(m for m in model.discriminator.modules() if isinstance(m, nn.BatchNorm2d))
    hook = bn.register_forward_pre_hook(lambda mod, args: sizes.append(args[0].shape[0]))
    model.train_step({"image": real}, 0)
    hook.remove()
    return sizes


def test_separate_and_mixed_batches_compose_d_batches_differently():
    real = images(8)
    assert _bn_batch_sizes(gan(*SMALL, "model.separate_batches=true"), real) == [8, 8, 8]  # real, fake, G step
    assert _bn_batch_sizes(gan(*SMALL, "model.separate_batches=false"), real) == [16, 8]  # mixed, G step


@pytest.mark.parametrize("d_steps,g_steps", [(1, 1), (2, 1), (1, 3)])
def test_step_ratio_counts_optimizer_steps(d_steps, g_steps):
    model = gan(*SMALL, f"model.d_steps={d_steps}", f"model.g_steps={g_steps}")
    calls = {"discriminator": 0, "generator": 0}
    for name, opt in model.optimizers().items():
        step = opt.step

        def counted(*a, _name=name, _step=step, **k):
            calls[_name] += 1
            return _step(*a, **k)
        opt.step = counted
    out = model.train_step({"image": images()}, 0)
    assert calls == {"discriminator": d_steps, "generator": g_steps}
    assert set(out) == {"d_loss", "g_loss", "d_real", "d_fake"} and all(math.isfinite(v) for v in out.values())


def test_ema_moves_toward_weights_at_the_decay_rate():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = EMA(net, decay=0.9)
    start = net[0].weight.detach().clone()
    assert not any(p.requires_grad for p in ema.shadow.parameters())
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].running_mean.fill_(3.0)
    ema.update(net)
    assert torch.allclose(ema.shadow[0].weight, start + 0.1)
    ema.update(net)
    assert torch.allclose(ema.shadow[0].weight, start + 0.19)  # 1 - 0.9^2
    assert torch.equal(ema.shadow[1].running_mean, torch.full((2,), 3.0))  # buffers are copied


def test_ema_warmup_uses_the_smaller_decay_early():
    net = nn.Sequential(nn.Linear(2, 2))
    ema = EMA(net, decay=0.999)
    start = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
    ema.update(net, num_updates=0)  # decay min(0.999, 1/10) = 0.1
    assert torch.allclose(ema.shadow[0].weight, start + 0.9)
    ema.update(net, num_updates=10_000)  # decay 0.999 < 10001/10010
    assert torch.allclose(ema.shadow[0].weight, start + 0.9 + 0.1 * 0.001)


def test_gan_ema_is_checkpointed_not_trained_and_used_for_sampling():
    model = gan(*SMALL, "model.ema_decay=0.5", "model.ema_warmup=false")
    assert set(model.networks()) == {"generator", "discriminator"}
    assert any(k.startswith("generator_ema.") for k in model.state_dict())
    assert not any(p.requires_grad for p in model.generator_ema.parameters())
    trained = {id(p) for o in model.optimizers().values() for g in o.param_groups for p in g["params"]}
    assert not trained & {id(p) for p in model.generator_ema.parameters()}
    before = [p.detach().clone() for p in model.generator_ema.parameters()]
    model.train_step({"image": images()}, 0)
    for old, ema_p, live in zip(before, model.generator_ema.parameters(), model.generator.parameters()):
        assert torch.allclose(ema_p, 0.5 * old + 0.5 * live)
    warm = gan(*SMALL, "model.ema_decay=0.5")  # default warm-up: decay min(0.5, 1/10) at the first G update
    before = [p.detach().clone() for p in warm.generator_ema.parameters()]
    warm.train_step({"image": images()}, 0)
    for old, ema_p, live in zip(before, warm.generator_ema.parameters(), warm.generator.parameters()):
        assert torch.allclose(ema_p, 0.1 * old + 0.9 * live)
    model.eval()
    z = torch.randn(4, 100, generator=torch.Generator().manual_seed(1))
    got = model.sample(4, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(got, (model.generator_ema(z) + 1) / 2)
    assert not torch.allclose(got, (model.generator(z) + 1) / 2)


def test_diffaugment_changes_images_keeps_shape_range_and_gradient():
    x = images(4, 16).requires_grad_(True)
    for policy in ("color", "translation", "cutout", "color,translation,cutout"):
        out = diff_augment(x, policy, uniform_draw(torch.Generator().manual_seed(0)))
        again = diff_augment(x, policy, uniform_draw(torch.Generator().manual_seed(0)))
        assert out.shape == x.shape and torch.equal(out, again)
        assert not torch.allclose(out, x), policy
        if "color" not in policy:
            assert out.min() >= -1 and out.max() <= 1, policy
        out.sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
        x.grad = None
    cut = diff_augment(torch.ones(64, 1, 16, 16), "cutout", uniform_draw(torch.Generator().manual_seed(0)))
    zeroed = (cut == 0).float().mean(dim=(1, 2, 3))
    assert zeroed.max() <= 0.25 and zeroed.mean() > 0.1  # an 8x8 square, clipped at the border
    assert diff_augment(x, None, None) is x
    with pytest.raises(ConfigError, match="model.diffaug"):
        gan("model.diffaug=color,flip")


def test_gan_diffaug_reaches_the_discriminator():
    seen = []
    model = gan(*SMALL, "model.diffaug=translation,cutout")
    model.discriminator.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach()))
    real = images()
    model.train_step({"image": real}, 0)
    assert seen[0].shape == real.shape and not torch.equal(seen[0], real)


def test_spectral_norm_wraps_discriminator_layers():
    plain, normed = gan(*SMALL), gan(*SMALL, "model.spectral_norm=true")
    layers = [m for m in normed.discriminator.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert layers and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in layers)
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in normed.generator.modules())
    # D loses its BatchNorms (weight, bias, running mean and var: 4 per channel) and those convs gain a bias
    bn_channels = sum(b.num_features for b in plain.discriminator.modules() if isinstance(b, nn.BatchNorm2d))
    assert bn_channels and not any(isinstance(b, nn.BatchNorm2d) for b in normed.discriminator.modules())
    counts, plain_counts = normed.parameter_counts(), plain.parameter_counts()
    assert counts["generator"] == plain_counts["generator"]
    assert counts["discriminator"] == plain_counts["discriminator"] - 3 * bn_channels
    seed_d = gan("model.preset=seed", *SMALL, "model.spectral_norm=true").discriminator  # the seed DCGAN's D too
    assert not any(isinstance(b, nn.BatchNorm2d) for b in seed_d.modules())
    assert math.isfinite(normed.train_step({"image": images()}, 0)["d_loss"])


def test_config_refusals_name_the_key():
    for override, key in [("model.d_steps=0", "model.d_steps"), ("model.label_smoothing=1.5", "model.label_smoothing"),
                          ("model.label_smoothing=[0.9, 0.8]", "model.label_smoothing"),
                          ("model.label_flip_prob=0.7", "model.label_flip_prob"), ("model.ema_decay=1.0", "model.ema_decay"),
                          ("model.betas=[0.5]", "model.betas"), ("model.loss=wgan", "model.loss"),
                          ("model.arch=resnet", "model.arch"), ("model.instance_noise=-1", "model.instance_noise")]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_config(CONFIGS / "dcgan-mnist.yaml", [override])
    cfg = load_config(CONFIGS / "dcgan-mnist.yaml", ["model.g_lr=0.0001", "model.d_lr=0.0004"])
    model = build_model(cfg)
    assert model.g_optimizer.defaults["lr"] == 1e-4 and model.d_optimizer.defaults["lr"] == 4e-4  # TTUR


# --- training -----------------------------------------------------------------------------------------

def test_tiny_gan_learns_something():
    """On one fixed pattern, D's loss falls within a few steps and G's weights and output move."""
    model = gan("model.width=8", "data.image_size=16", "train.lr=0.002")
    real = -torch.ones(16, 1, 16, 16)
    real[..., :8] = 1.0
    g_before = [p.detach().clone() for p in model.generator.parameters()]
    d_losses = [model.train_step({"image": real}, s)["d_loss"] for s in range(8)]
    assert d_losses[0] == pytest.approx(2 * math.log(2), abs=0.2)  # D starts near chance
    assert sum(d_losses[-3:]) / 3 < d_losses[0] - 0.2
    assert any(not torch.equal(a, b) for a, b in zip(g_before, model.generator.parameters()))
    out = model.eval().sample(8, generator=torch.Generator().manual_seed(0))
    assert float(out.std()) > 1e-3


def test_eval_d_real_scores_with_batch_statistics_and_changes_nothing():
    """Held-out d_real is what D's training forward would say (BatchNorm on the batch's own statistics),
    not the eval-mode score of running statistics that mix real and fake batches; D's state is untouched."""
    model = gan("model.width=8", "data.image_size=16", "train.lr=0.002")
    real = -torch.ones(16, 1, 16, 16)
    real[..., :8] = 1.0
    for s in range(6):
        model.train_step({"image": real}, s)
    model.eval()
    before = {k: v.clone() for k, v in model.discriminator.state_dict().items()}
    d_real = model.eval_step({"image": real}, torch.Generator().manual_seed(0))["d_real"]
    after = model.discriminator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.discriminator.training and not any(m.training for m in model.discriminator.modules())
    twin = copy.deepcopy(model.discriminator).train()
    with torch.no_grad():
        expected = float(torch.sigmoid(twin(real)).mean())
        running = float(torch.sigmoid(model.discriminator(real)).mean())
    assert d_real == pytest.approx(expected, abs=1e-6)
    assert abs(d_real - running) > 1e-3  # the running statistics differ from a real-only batch's


_SPLITS: dict = {}


@pytest.fixture
def cached_data(monkeypatch):
    """Load each split once for this module (the tests train several tiny GANs on the same data)."""
    original = datasets.load_split

    def load(data, split):
        key = (repr(data), split)
        if key not in _SPLITS:
            _SPLITS[key] = original(data, split)
        return _SPLITS[key]
    monkeypatch.setattr(datasets, "load_split", load)


TINY_GAN = ["data.limit=64", "data.test_limit=64", "train.batch_size=16", "train.progress=false", "model.width=8",
            "eval.batch_size=64"]


def test_end_to_end_training_writes_checkpoints_and_samples(tmp_path, cached_data):
    config = load_config(CONFIGS / "dcgan-mnist.yaml", [*TINY_GAN, "train.epochs=1"])
    run = loop.train(config, tmp_path / "run")
    assert [p.name for p in list_checkpoints(run)] == ["step_000000004.safetensors"]
    assert (run / "samples" / "epoch_0001.png").is_file()
    (record,) = losses(run)
    for key in ("train/d_loss", "train/g_loss", "train/d_real", "train/d_fake", "test/d_real"):
        assert math.isfinite(record[key]), key
    assert 0 < record["train/d_real"] < 1


@pytest.mark.parametrize("where", ["epoch", "mid-epoch"])
def test_gan_resume_equals_uninterrupted(tmp_path, cached_data, where):
    tricks = ["model.ema_decay=0.9", "model.diffaug=color,translation,cutout", "model.label_smoothing=[0.8, 1.0]",
              "model.label_flip_prob=0.1", "model.instance_noise=0.1", "model.instance_noise_anneal_steps=6",
              "model.dropout=0.2", "model.d_steps=2", "model.separate_batches=false", "model.spectral_norm=true"]

    def config(epochs, *extra):
        return load_config(CONFIGS / "dcgan-mnist.yaml", [*TINY_GAN, *tricks, f"train.epochs={epochs}", *extra])
    if where == "epoch":
        full = loop.train(config(2), tmp_path / "full")
        part = loop.train(config(1), tmp_path / "part")
        loop.train(config(2), part, resume=True)
    else:  # checkpoints every step; dropping the newest simulates a kill at epoch 2, batch 2 of 4
        every = ("train.checkpoint_every_steps=1", "train.keep_checkpoints=100")
        full = loop.train(config(2, *every), tmp_path / "full")
        part = tmp_path / "part"
        shutil.copytree(full, part)
        for ckpt in list_checkpoints(part)[6:]:
            ckpt.unlink()
        loop.train(config(2, *every), part, resume=True)
    assert losses(part) == losses(full)
    wa, wb = weights(part), weights(full)
    assert wa.keys() == wb.keys() and any(".generator_ema." in k for k in wa)
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def test_initialisation_depends_on_config_seed_not_global_rng():
    """Every DDP rank (global RNG seeded seed + rank) must build the same G, D, EMA copy and SN vectors."""
    extra = (*SMALL, "model.spectral_norm=true", "model.ema_decay=0.9")
    a, b = gan(*extra, seed=0).state_dict(), gan(*extra, seed=1).state_dict()
    assert any(k.endswith("_u") for k in a) and any(k.startswith("generator_ema.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    state = torch.get_rng_state()
    build_model(load_config(CONFIGS / "dcgan-mnist.yaml", list(extra)))
    assert torch.equal(torch.get_rng_state(), state)  # the loop's RNG stream is untouched
    c = build_model(load_config(CONFIGS / "dcgan-mnist.yaml", [*extra, "seed=5"])).state_dict()
    assert not torch.equal(a["generator.net.1.weight"], c["generator.net.1.weight"])


def test_counted_size_adds_only_batchnorm_running_stats():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Linear(2, 3))
    assert counted_size(net) == (4 * 9 + 4) + (4 + 4) + (4 + 4) + (2 * 3 + 3)
