import math

import pytest
import torch

from conftest import CONFIGS, tiny_config
from genlab.config import load_config
from genlab.core.noise import SharedNoise
from genlab.eval.likelihood import importance_sampled_log_likelihood
from genlab.eval.vae_metrics import evaluate_vae
from genlab.models.vae_losses import bernoulli_nll, gaussian_kl, gaussian_log_prob, iwae_bound, reparameterize
from genlab.registry import build_model


@pytest.mark.parametrize("name, counts", [
    ("vae-mnist", {"encoder": 495_252, "decoder": 648_001}),
    ("cvae-mnist", {"encoder": 504_164, "decoder": 321_665}),
])
def test_seed_preset_matches_the_seed_tables(name, counts):
    assert build_model(load_config(CONFIGS / f"{name}.yaml")).parameter_counts() == counts


#: the all-convolutional layout (preset deep) at tiny widths
TINY_DEEP = ["model.preset=deep", "model.conv_channels=[4,4,8,8,8]", "model.encoder_hidden=[16]",
             "model.decoder_hidden=[]", "model.decoder_channels=[8,4,4,4,4]"]


def test_deep_preset_is_the_all_convolutional_layout():
    model = build_model(load_config(CONFIGS / "vae-mnist-32d.yaml"))
    assert model.parameter_counts() == {"encoder": 921_440, "decoder": 183_585}
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 1] and convs[-1].kernel_size == (7, 7)  # the valid 7x7 conv
    assert [c.out_channels for c in convs] == [32, 32, 64, 64, 64, 256]
    transposed = [m for m in model.decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [t.out_channels for t in transposed] == [64, 64, 32, 32, 32, 32]
    assert [t.stride[0] for t in transposed] == [1, 1, 2, 1, 2, 1]


@pytest.mark.parametrize("name", ["vae-mnist", "cvae-mnist"])
def test_deep_layout_shapes_for_vae_and_cvae(name):
    model = build_model(tiny_config(name, *TINY_DEEP, "model.latent_dim=5")).eval()
    x, y = torch.rand(3, 1, 28, 28), torch.tensor([0, 4, 9])
    mu, logvar = model.encode(x, y)
    assert mu.shape == logvar.shape == (3, 5)
    assert model.decode(mu, y).shape == (3, 1, 28, 28)
    s = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert s.shape == (4, 1, 28, 28) and s.min() >= 0 and s.max() <= 1


@pytest.mark.parametrize("overrides, key", [
    (["model.preset=deep", "model.conv_channels=[4,8,8]"], "model.conv_channels"),
    (["model.preset=deep", "model.decoder_hidden=[16]"], "model.decoder_hidden"),
    (["model.preset=deep", "model.encoder_hidden=[16,8]"], "model.encoder_hidden"),
    (["model.preset=deep", "model.decoder_channels=[8,8]"], "model.decoder_channels"),
    (["model.decoder_channels=[8,8,8,8,8]"], "model.decoder_channels"),  # the seed layout mirrors conv_channels
    (["model.arch=allconv"], "model.conv_channels"),
])
def test_layout_keys_are_checked(overrides, key):
    from genlab.errors import ConfigError

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(CONFIGS / "vae-mnist.yaml", overrides)


def test_shapes_and_ranges():
    model = build_model(tiny_config("cvae-mnist")).eval()
    x = torch.rand(5, 1, 28, 28)
    y = torch.arange(5)
    mu, logvar = model.encode(x, y)
    assert mu.shape == logvar.shape == (5, 2)
    assert model.decode(mu, y).shape == (5, 1, 28, 28)
    s = model.sample(7, cond=torch.full((7,), 3), generator=torch.Generator().manual_seed(0))
    assert s.shape == (7, 1, 28, 28) and s.min() >= 0 and s.max() <= 1


def test_bernoulli_nll_matches_manual_formula():
    logits, x = torch.randn(3, 1, 4, 4), torch.randint(0, 2, (3, 1, 4, 4)).float()
    p = torch.sigmoid(logits)
    manual = -(x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)
    torch.testing.assert_close(bernoulli_nll(logits, x), manual, rtol=1e-5, atol=1e-4)


def test_analytic_kl_matches_monte_carlo():
    mu, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.3, -0.7]])
    z = reparameterize(mu.expand(200_000, 2), logvar.expand(200_000, 2), torch.randn(200_000, 2, generator=torch.Generator().manual_seed(0)))
    mc = (gaussian_log_prob(z, mu, logvar) - gaussian_log_prob(z, torch.zeros(2), torch.zeros(2))).mean()
    assert abs(float(gaussian_kl(mu, logvar)) - float(mc)) < 0.01
    assert float(gaussian_kl(torch.zeros(1, 4), torch.zeros(1, 4))) == 0.0


def test_iwae_bound_is_logmeanexp():
    w = torch.log(torch.tensor([[1.0], [3.0]]))
    assert float(iwae_bound(w)) == pytest.approx(math.log(2.0))


@pytest.mark.parametrize("layout", [[], TINY_DEEP], ids=["seed", "deep"])
def test_loss_falls_on_a_tiny_overfit(layout):
    cfg = tiny_config("vae-mnist", "train.lr=0.003", "data.binarize=none", *layout)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.noise = SharedNoise(0)
    from genlab.data.datasets import load_split
    from genlab.data.sources import make_batch

    data = load_split(cfg.data, "train")
    batch = make_batch(data, torch.arange(32), cfg.data, torch.device("cpu"))
    losses = [model.train_step(batch, step)["loss"] for step in range(60)]
    assert losses[-1] < 0.7 * losses[0]
    assert all(math.isfinite(v) for v in losses)


def test_beta_weights_the_kl_term():
    cfg = tiny_config("vae-mnist", "model.beta=0")
    model = build_model(cfg)
    out = model.losses(torch.rand(4, 1, 28, 28).round(), None, torch.zeros(4, 2))
    torch.testing.assert_close(out["loss"], out["recon"])


def test_cvae_needs_labels():
    model = build_model(tiny_config("cvae-mnist"))
    with pytest.raises(ValueError, match="labels"):
        model.encode(torch.rand(2, 1, 28, 28))


def test_nll_full_estimate_equals_nll_when_the_subset_is_the_whole_test_set():
    """The control-variate estimate adds the subset's mean gap to the full −ELBO; on all images it is the NLL."""
    config = tiny_config("vae-mnist", "data.test_limit=24", "eval.iw_samples=8", "eval.nll_images=null")
    torch.manual_seed(0)
    out = evaluate_vae(build_model(config).eval(), config)
    assert out["test/nll_images"] == out["test/elbo_images"] == 24
    assert abs(out["test/nll_full_estimate"] - out["test/nll"]) < 1e-6
    assert out["test/nll_full_estimate_stderr"] > 0
    # L_8 is a tighter bound than the one-sample ELBO on an untrained model: a gap of several nats
    assert out["test/nll"] < out["test/neg_elbo"]

    subset = evaluate_vae(build_model(config).eval(), tiny_config("vae-mnist", "data.test_limit=24", "eval.iw_samples=8",
                                                                  "eval.nll_images=6"))
    assert subset["test/nll_images"] == 6 and subset["test/nll_full_estimate"] != subset["test/nll"]


class _LinearBernoulliModel:
    """A 2-D latent model with decoder logits ``W z + b`` and a fixed Gaussian proposal per image."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        self.weight, self.bias = weight, bias  # (784, 2), (784,)
        self.mu = self.logvar = None  # (N, 2) proposals, set by the test

    def encode(self, x, y):
        return self.mu, self.logvar

    def decode(self, z, y):
        return (z @ self.weight.T + self.bias).view(-1, 1, 28, 28)


def test_importance_sampled_nll_agrees_with_quadrature_in_two_dimensions():
    """With a 2-D latent, log p(x) = log ∫ p(x|z) p(z) dz can be integrated on a grid: an independent
    check of the IWAE estimator (its proposal, prior and decoder terms and the logmeanexp). The
    posteriors are narrow (std ≈ 0.2) and the proposals differ from the prior, so every term matters."""
    g = torch.Generator().manual_seed(0)
    model = _LinearBernoulliModel(0.3 * torch.randn(784, 2, generator=g), torch.randn(784, generator=g) - 1.0)
    z_true = torch.tensor([[0.5, -1.0], [1.5, 0.3], [-0.8, -0.2]])
    x = torch.bernoulli(torch.sigmoid(model.decode(z_true, None)), generator=g)  # (3, 1, 28, 28)
    side, half = 561, 7.0  # grid spacing 0.025; p(z) is below 1e-10 outside [-7, 7]^2
    axis = torch.linspace(-half, half, side, dtype=torch.float64)
    z = torch.cartesian_prod(axis, axis)  # (side^2, 2)
    logits = model.decode(z.float(), None)
    log_joint = torch.stack([-bernoulli_nll(logits, xi.expand_as(logits)) for xi in x]).double()
    log_joint += gaussian_log_prob(z, torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    quadrature = torch.logsumexp(log_joint, dim=1) + math.log((2 * half / (side - 1)) ** 2)
    # proposals: the posterior's moments from the grid, variance inflated 1.5x (q must cover p(z|x))
    post = torch.softmax(log_joint, dim=1)  # (3, side^2)
    mean = post @ z
    var = post @ z.pow(2) - mean.pow(2)
    assert var.max() < 0.1  # narrow posteriors: the proposal terms carry several nats
    model.mu, model.logvar = mean.float(), (1.5 * var).log().float()
    iwae = importance_sampled_log_likelihood(model, x, None, k=1000, generator=torch.Generator().manual_seed(2))
    # L_k is a lower bound whose gap shrinks with k (measured: within 0.012 nats of the grid sum here)
    assert torch.all(iwae <= quadrature + 0.02), (iwae, quadrature)
    assert torch.all(quadrature - iwae < 0.1), (iwae, quadrature)
