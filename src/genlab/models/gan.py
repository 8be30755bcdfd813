"""Adversarial models: fully-connected GAN and DCGAN, with the classic stabilising tricks.

GAN (Goodfellow et al. 2014): a generator G maps z ~ N(0, I) to an image in [-1, 1] (tanh), a
discriminator D maps an image to one logit. Architectures (``model.arch`` × ``model.preset``):

* ``fc`` / ``seed`` — seed report 001, FCGAN (Keras, MNIST resized to 56×56×1, latent 100):
  G Dense 256 → 512 → 1024 (LeakyReLU) → 3136 (tanh) = **3,897,152** parameters;
  D Dense 1024 → 512 → 256 (LeakyReLU + Dropout) → 1 = **3,868,673**. Works for any image size
  (the image is flattened; the seed's 56×56 gives its counts).
* ``dcgan`` / ``seed`` — seed report 001, DCGAN (96×96×3, latent 128), with w = ``model.width`` = 32:
  G Dense 128 → (2w=64)·6·6 (no activation) → reshape → ConvT 16w k5 s1 → ConvT 8w, 4w, 2w, w k5 s2
  (no bias, each BatchNorm + ReLU; Dropout after the first two) → 1×1 conv to C (bias; the seed's
  per-pixel Dense) → tanh: **5,472,483**. D Conv 2w k4 s2 (no bias) LeakyReLU → Conv 2w, 4w, 8w
  k4 s2 (no bias) each BatchNorm + LeakyReLU → Flatten (8w·6·6 = 9216) → Dense 1: **734,977**.
  Four stride-2 layers: any image size that is a multiple of 16 (the seed uses 96).
* ``dcgan`` / ``radford`` — Radford et al. 2016 (§3-4, Fig. 1), f = ``model.width`` = 64:
  G z → ConvT k4 s1 to 4×4 → ConvT k4 s2 … with channels …, 8f, 4f, 2f, f, BatchNorm + ReLU, then
  ConvT to C and tanh; D Conv k4 s2 with LeakyReLU 0.2, BatchNorm on all but the first, and a final
  4×4 conv to one logit (no sigmoid: the losses take logits); all weights N(0, 0.02) (§4).
  Image sizes 16-256, powers of two (32: 4f/2f/f; 64: 8f/4f/2f/f).

**Parameter counts** (:meth:`GAN.parameter_counts`) follow Keras, whose ``Total params`` — the
numbers in the seed report — include BatchNorm's moving mean and variance (4 numbers per channel,
2 of them non-trainable: the seed D lists 896 non-trainable = 2·(64 + 128 + 256) for its three
BatchNorms). PyTorch keeps those as buffers, so the count here is
trainable parameters + BatchNorm ``running_mean``/``running_var`` (``num_batches_tracked`` and
spectral-norm vectors are not counted).

The seed does not state its LeakyReLU slope, dropout rate, initialisation or optimiser; preset
``seed`` uses the Keras defaults its code relies on (LeakyReLU α = 0.3, Glorot-uniform weights, zero
biases, Adam β = (0.9, 0.999)) and the TensorFlow DCGAN tutorial's dropout 0.3 (the seed's code is
that tutorial's). BatchNorm uses PyTorch's ε and momentum.

Training (:meth:`GAN.train_step`): ``d_steps`` D updates, then ``g_steps`` G updates per batch; the
tricks live in :mod:`genlab.adversarial.tricks` and the losses in :mod:`genlab.adversarial.losses`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from genlab.adversarial.steps import Tricks, batch_statistics, discriminator_loss, generator_loss
from genlab.adversarial.tricks import EMA, check_diffaug
from genlab.analysis.gan_figures import write_gan_figures
from genlab.eval.gan_metrics import evaluate_gan
from genlab.family import Family
from genlab.models.base import GenerativeModel, adam
from genlab.models.gan_nets import (
    FCDiscriminator,
    FCGenerator,
    RadfordDiscriminator,
    RadfordGenerator,
    SeedDCGANDiscriminator,
    SeedDCGANGenerator,
    apply_spectral_norm,
    counted_size,
    init_weights,
)
from genlab.schema import Config, ModelConfig, canonical_preset, check

#: (preset, arch) → defaults of the ``None`` fields of :class:`GANConfig`
GAN_PRESETS: dict[tuple[str, str], dict] = {
    ("lab-report", "fc"): {"latent_dim": 100, "hidden": [256, 512, 1024], "leaky_slope": 0.3, "dropout": 0.3,
                     "init": "glorot", "betas": [0.9, 0.999]},
    ("lab-report", "dcgan"): {"latent_dim": 128, "width": 32, "leaky_slope": 0.3, "dropout": 0.3,
                        "init": "glorot", "betas": [0.9, 0.999]},
    # Radford et al. 2016, §4: LeakyReLU slope 0.2, N(0, 0.02) init, Adam lr 2e-4, beta1 0.5; no dropout.
    ("radford", "dcgan"): {"latent_dim": 100, "width": 64, "leaky_slope": 0.2, "dropout": 0.0,
                           "init": "dcgan", "betas": [0.5, 0.999]},
}
PRESET_NAMES = ("lab-report", "radford")
#: image sizes of the Radford DCGAN (a 4×4 start doubled by each stride-2 layer)
RADFORD_SIZES = (16, 32, 64, 128, 256)


@dataclass
class GANConfig(ModelConfig):
    """Model section of a GAN config. ``None`` fields take the value of ``(preset, arch)``.

    Training tricks (all off by default except separate real/fake D batches, which the seed
    recommends): see :mod:`genlab.adversarial.tricks` for the references.
    """

    family: str = "gan"
    preset: str = "lab-report"  # the seed report's tables ("seed" is accepted as an alias); radford: Radford et al. 2016 (dcgan only)
    arch: Literal["fc", "dcgan"] = "dcgan"
    latent_dim: int | None = None
    hidden: list[int] | None = None  # fc: G widths (D uses them reversed)
    width: int | None = None  # dcgan: base channel count (seed: w=32 → G 512..32; radford: f=64)
    leaky_slope: float | None = None  # LeakyReLU negative slope
    dropout: float | None = None  # fc: D; dcgan seed: G's first two blocks; radford: after each D activation
    init: Literal["glorot", "dcgan"] | None = None  # glorot: Keras default; dcgan: N(0, 0.02) (Radford §4)
    loss: Literal["bce", "lsgan", "hinge"] = "bce"
    g_lr: float | None = None  # None: train.lr (different g_lr/d_lr = TTUR, Heusel et al. 2017)
    d_lr: float | None = None
    betas: list[float] | None = None  # Adam (beta1, beta2); Radford §4: (0.5, 0.999)
    d_steps: int = 1  # D updates per batch (k of Goodfellow et al. 2014, Alg. 1)
    g_steps: int = 1  # G updates per batch
    label_smoothing: float | list[float] | None = None  # real target: v (e.g. 0.9) or uniform in [low, high]
    label_flip_prob: float = 0.0  # noisy labels: each D target flipped with this probability
    instance_noise: float = 0.0  # sigma_0 of Gaussian noise on D's inputs ([-1, 1] image units)
    instance_noise_anneal_steps: int = 0  # sigma falls linearly to 0 at this step; 0 = constant sigma_0
    separate_batches: bool = True  # D sees real and fake in separate batches (seed §5.2) or one mixed batch
    spectral_norm: bool = False  # spectral normalisation of D's conv/linear weights, D without BatchNorm (Miyato et al. 2018)
    ema_decay: float | None = None  # EMA of G's weights, used for sampling; null = off (e.g. 0.999)
    ema_warmup: bool = True  # decay min(ema_decay, (1 + n) / (10 + n)) after n G updates (TF's num_updates)
    diffaug: str | None = None  # DiffAugment policy, e.g. "color,translation,cutout" (Zhao et al. 2020)

    def __post_init__(self) -> None:
        self.preset = canonical_preset(self.preset)
        check(self.preset in PRESET_NAMES, "model.preset", self.preset, ", ".join(PRESET_NAMES))
        check((self.preset, self.arch) in GAN_PRESETS, "model.preset", self.preset,
              "lab-report (radford is a DCGAN preset: use model.arch=dcgan)")
        for key, value in GAN_PRESETS[(self.preset, self.arch)].items():
            if getattr(self, key) is None:
                setattr(self, key, list(value) if isinstance(value, list) else value)
        check(self.arch == "fc" or self.hidden is None, "model.hidden", self.hidden,
              "null with model.arch=dcgan (its size is model.width)")
        check(self.arch == "dcgan" or self.width is None, "model.width", self.width,
              "null with model.arch=fc (its sizes are model.hidden)")
        if self.arch == "fc":
            check(self.hidden is not None and len(self.hidden) >= 1 and min(self.hidden) >= 1, "model.hidden",
                  self.hidden, "a list of one or more positive integers (the fc generator's widths)")
        else:
            check(self.width is not None and self.width >= 1, "model.width", self.width, "an integer >= 1")
        check(self.latent_dim >= 1, "model.latent_dim", self.latent_dim, "an integer >= 1")
        check(self.leaky_slope >= 0.0, "model.leaky_slope", self.leaky_slope, "a number >= 0")
        check(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "a number in [0, 1)")
        for key in ("g_lr", "d_lr"):
            value = getattr(self, key)
            check(value is None or value > 0, f"model.{key}", value, "a number > 0 or null (= train.lr)")
        check(len(self.betas) == 2 and all(0.0 <= b < 1.0 for b in self.betas), "model.betas", self.betas,
              "two numbers in [0, 1), e.g. [0.5, 0.999]")
        check(self.d_steps >= 1, "model.d_steps", self.d_steps, "an integer >= 1")
        check(self.g_steps >= 1, "model.g_steps", self.g_steps, "an integer >= 1")
        ls = self.label_smoothing
        if isinstance(ls, list):
            check(len(ls) == 2 and 0.0 <= ls[0] <= ls[1] <= 1.0, "model.label_smoothing", ls,
                  "null, a target in (0, 1] (e.g. 0.9) or [low, high] with 0 <= low <= high <= 1")
        else:
            check(ls is None or 0.0 < ls <= 1.0, "model.label_smoothing", ls,
                  "null, a target in (0, 1] (e.g. 0.9) or [low, high] with 0 <= low <= high <= 1")
        check(0.0 <= self.label_flip_prob < 0.5, "model.label_flip_prob", self.label_flip_prob, "a number in [0, 0.5)")
        check(self.instance_noise >= 0.0, "model.instance_noise", self.instance_noise, "a number >= 0")
        check(self.instance_noise_anneal_steps >= 0, "model.instance_noise_anneal_steps",
              self.instance_noise_anneal_steps, "an integer >= 0 (0 = no annealing)")
        check(self.ema_decay is None or 0.0 < self.ema_decay < 1.0, "model.ema_decay", self.ema_decay,
              "null (off) or a number in (0, 1), e.g. 0.999")
        check_diffaug(self.diffaug)


# --- the model ------------------------------------------------------------------------------------

class GAN(GenerativeModel):
    """Unconditional GAN (Goodfellow et al. 2014) with FC or DCGAN networks and the classic tricks.

    ``networks()`` = ``{"generator", "discriminator"}``; with ``model.ema_decay`` the EMA copy of G
    is the submodule ``generator_ema`` (checkpointed in ``state_dict``, no gradients, not in
    ``networks()``) and :meth:`sample` uses it. Images are in [-1, 1] (``data.value_range: symmetric``).
    """

    family = "gan"
    drop_last = True  # BatchNorm: no tiny last batch

    def __init__(self, config: Config):
        super().__init__(config)
        m, d = config.model, config.data
        check(d.value_range == "symmetric", "data.value_range", d.value_range,
              "'symmetric' (the generator's tanh output is in [-1, 1])")
        if m.arch == "dcgan" and m.preset == "lab-report":
            check(d.image_size % 16 == 0, "data.image_size", d.image_size,
                  "a multiple of 16 for the seed DCGAN (four stride-2 layers; the seed uses 96)")
        elif m.arch == "dcgan":
            check(d.image_size in RADFORD_SIZES, "data.image_size", d.image_size,
                  f"{', '.join(map(str, RADFORD_SIZES))} for the radford DCGAN")
        # Initialise from config.seed alone, not from the loop's per-rank global RNG: every process
        # then builds the same G, D, EMA copy and spectral-norm vectors. (DDP broadcasts parameters
        # at construction but, with broadcast_buffers=False, not buffers such as SN's u and v; the
        # EMA copy is not wrapped at all.) The global RNG is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.generator, self.discriminator = self._build_networks()
            init_weights(self.generator, m.init)
            init_weights(self.discriminator, m.init)
            if m.spectral_norm:
                apply_spectral_norm(self.discriminator)
        if m.ema_decay is not None:
            self._ema = EMA(self.generator, m.ema_decay)
            self.generator_ema = self._ema.shadow  # a submodule: checkpointed with the model
        else:
            self._ema = None
        lr = config.train.lr
        betas = tuple(m.betas)
        self.g_optimizer = adam(self.generator.parameters(), m.g_lr or lr, betas)
        self.d_optimizer = adam(self.discriminator.parameters(), m.d_lr or lr, betas)
        self.tricks = Tricks.from_config(m)

    def _build_networks(self) -> tuple[nn.Module, nn.Module]:
        m, d = self.config.model, self.config.data
        c, s = d.channels, d.image_size
        if m.arch == "fc":
            return (FCGenerator(m.latent_dim, m.hidden, c, s, m.leaky_slope),
                    FCDiscriminator(m.hidden, c, s, m.leaky_slope, m.dropout))
        # Spectral norm replaces D's BatchNorm, as in Miyato et al. 2018 (§4, their D has none) and
        # StudioGAN's SN-DCGAN: BatchNorm after a normalised conv would undo its Lipschitz bound.
        batchnorm = not m.spectral_norm
        if m.preset == "lab-report":
            return (SeedDCGANGenerator(m.latent_dim, m.width, c, s, m.dropout),
                    SeedDCGANDiscriminator(m.width, c, s, m.leaky_slope, batchnorm))
        return (RadfordGenerator(m.latent_dim, m.width, c, s),
                RadfordDiscriminator(m.width, c, s, m.leaky_slope, m.dropout, batchnorm))

    def networks(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"discriminator": self.d_optimizer, "generator": self.g_optimizer}

    def parameter_counts(self) -> dict[str, int]:
        """Per network: parameters + BatchNorm running mean/var (Keras' count, as in the seed's tables)."""
        return {name: counted_size(net) for name, net in self.networks().items()}

    # --- training -------------------------------------------------------------------------------
    def _latent(self, n: int) -> torch.Tensor:
        return self.noise.randn(n, self.config.model.latent_dim).to(self.device)

    def _score(self, logits: torch.Tensor) -> float:
        """Mean D output for logging: probability sigmoid(D) for ``bce``, the raw score otherwise."""
        logits = logits.detach().float()
        return float((torch.sigmoid(logits) if self.config.model.loss == "bce" else logits).mean())

    def train_step(self, batch, step):
        """``d_steps`` D updates then ``g_steps`` G updates on one real batch ``(N, C, S, S)`` in [-1, 1].

        Every D step reuses the same real batch with fresh latent noise (and fresh trick noise);
        the last D step generates with gradients so the first G step reuses those fakes (one G
        forward per batch at k = 1, as in the PyTorch DCGAN example); further G steps draw fresh z.
        D forward passes that update D go through ``self.run`` (DDP); G's step calls the bare D
        with frozen weights (no D gradient, so no D all-reduce is needed). The adversarial terms
        and tricks come from :mod:`genlab.adversarial.steps`. Returns per-batch means ``d_loss``,
        ``g_loss``, ``d_real``, ``d_fake`` (probabilities for ``bce``, raw scores otherwise) and
        ``noise_sigma`` when instance noise is on.
        """
        m = self.config.model
        real = batch["image"]
        n = real.shape[0]
        d_losses, d_reals, d_fakes, g_losses = [], [], [], []
        fake_for_g = None
        for k in range(m.d_steps):
            last = k == m.d_steps - 1
            z = self._latent(n)
            with self.autocast(), torch.set_grad_enabled(last):
                fake = (self.run("generator") if last else self.generator)(z)
            if last:
                fake_for_g = fake
            d_loss, real_logits, fake_logits = discriminator_loss(
                self.run("discriminator"), real, fake, self.tricks, step, self.noise,
                autocast=self.autocast, separate=m.separate_batches)
            self.step_optimizer("discriminator", d_loss)
            d_losses.append(float(d_loss.detach()))
            d_reals.append(self._score(real_logits))
            d_fakes.append(self._score(fake_logits))
        for j in range(m.g_steps):
            if j == 0:
                fake = fake_for_g
            else:
                with self.autocast():
                    fake = self.run("generator")(self._latent(n))
            g_loss, _ = generator_loss(self.discriminator, fake, self.tricks, step, self.noise, autocast=self.autocast)
            self.step_optimizer("generator", g_loss)
            if self._ema is not None:  # G updates before this one: exact on resume, as it derives from step
                self._ema.update(self.generator, step * m.g_steps + j if m.ema_warmup else None)
            g_losses.append(float(g_loss.detach()))
        out = {"d_loss": sum(d_losses) / len(d_losses), "g_loss": sum(g_losses) / len(g_losses),
               "d_real": sum(d_reals) / len(d_reals), "d_fake": sum(d_fakes) / len(d_fakes)}
        if m.instance_noise:
            out["noise_sigma"] = self.tricks.sigma(step)
        return out

    @torch.no_grad()
    def eval_step(self, batch, generator):
        """Mean D output on held-out real images, ``d_real`` (a train/test gap means D memorises), with
        BatchNorm on the batch's own statistics as in training (:func:`batch_statistics`)."""
        with batch_statistics(self.discriminator) as disc:
            return {"d_real": self._score(disc(batch["image"]))}

    @torch.no_grad()
    def sample(self, n, cond=None, generator=None):
        """``n`` images ``(n, C, S, S)`` in [0, 1] from z ~ N(0, I) (``generator``), via the EMA G if enabled."""
        if cond is not None:
            raise ValueError("this GAN is unconditional: sample(cond=None)")
        return self.generate(torch.randn(n, self.config.model.latent_dim, generator=generator))

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, S, S)`` in [0, 1] on the model's device for latents ``z`` ``(N, latent_dim)``,
        via the EMA G if enabled; decoded 500 at a time."""
        net = self.generator_ema if self._ema is not None else self.generator
        z = z.to(self.device)
        images = torch.cat([net(chunk) for chunk in z.split(500)]) if len(z) else net(z)
        return ((images.float() + 1.0) / 2.0).clamp_(0.0, 1.0)

    @torch.no_grad()
    def decode_latent(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`generate` for the ``latent`` ability (the demo's explorer and interpolation); no ``cond``."""
        if cond is not None:
            raise ValueError("this GAN is unconditional: decode_latent(z, cond=None)")
        return self.generate(z)


FAMILY = Family(
    name="gan", config_class=GANConfig, model_class=GAN, data_kind="images",
    loss_names=("d_loss", "g_loss", "d_real", "d_fake"), loss_units=None,
    metrics=evaluate_gan, figures=write_gan_figures, abilities=frozenset({"sample", "latent"}),
    summary="fully-connected GAN and DCGAN with the classic tricks; seed report 001",
)
