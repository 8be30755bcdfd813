"""Convolutional VAE (Kingma & Welling 2014) with the seed report's architecture as preset ``seed``.

Seed report 000, question 1 (Keras, 28×28×1, 2-D latent):

* encoder: Conv 32 k3 s2 → Dropout → Conv 64 k3 s1 → Dropout → Conv 128 k3 s2 → Flatten (6272)
  → Dense 64 → Dense 16 → (z_mean, z_log_var), ReLU throughout; 495,252 parameters.
* decoder: Dense 64 → Dense 6272 → 7×7×128 → ConvT 128 k3 s2 → ConvT 64 k3 s1 → ConvT 32 k3 s2
  → ConvT 1 k3 (sigmoid), ReLU throughout; 648,001 parameters.

Keras ``padding="same"`` becomes ``padding=1`` (and ``output_padding=1`` for stride-2 transposed
convolutions): same shapes, same parameter counts. The decoder returns Bernoulli *logits*; the
seed's sigmoid is applied in :meth:`VAE.sample` and inside the loss (BCE with logits). The seed
does not state its dropout rate; we use 0.2.

Two layouts (``model.arch``): ``seed`` is the seed's (three convolutions, then dense layers; presets
``seed`` and ``large``); ``allconv`` (preset ``deep``, for likelihood runs) is the all-convolutional
MNIST network of van den Berg et al. 2018 (Sylvester flows, §5 and their code): five stride-1/2/1/2/1
convolutions and a final (S/4)×(S/4) "valid" convolution to a 256-d vector, mirrored by transposed
convolutions in the decoder and a 1×1 output convolution. Their gated k5 convolutions are replaced
by plain k3 convolutions with ELU (Clevert et al. 2016) to suit CPUs: a gated layer is two
convolutions, and a k5 kernel costs 25/9 ≈ 2.8× the multiply-adds of a k3 one. BENCHMARKS.md
compares it with ``large`` at the same number of epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from genlab.analysis.vae_figures import write_vae_figures
from genlab.eval.vae_metrics import evaluate_vae
from genlab.family import Family
from genlab.models.base import GenerativeModel, adam
from genlab.models.vae_losses import bernoulli_nll, gaussian_kl, reparameterize
from genlab.nn.dropout import Dropout
from genlab.schema import Config, ModelConfig, canonical_preset, check

#: Architecture presets; ``seed`` reproduces the seed report's layer tables exactly.
VAE_PRESETS = {
    "lab-report": {"arch": "seed", "conv_channels": [32, 64, 128], "encoder_hidden": [64, 16], "decoder_hidden": [64],
             "dropout": 0.2},
    # For larger latents: no 16-unit bottleneck in front of the latent, no dropout.
    "large": {"arch": "seed", "conv_channels": [32, 64, 128], "encoder_hidden": [512], "decoder_hidden": [512],
              "dropout": 0.0},
    # van den Berg et al. 2018's MNIST layout (their code: 32, 32, 64, 64, 64 → 256; decoder 64, 32, 32, 32, 32)
    "deep": {"arch": "allconv", "conv_channels": [32, 32, 64, 64, 64], "encoder_hidden": [256],
             "decoder_hidden": [], "decoder_channels": [64, 32, 32, 32, 32], "dropout": 0.0},
}
#: strides of the all-convolutional layout's five k3 layers (encoder and, in order, decoder)
ALLCONV_STRIDES = (1, 2, 1, 2, 1)


@dataclass
class VAEConfig(ModelConfig):
    """Model section of a VAE/CVAE config. ``None`` fields take the value of ``preset``."""

    family: str = "vae"
    preset: str = "lab-report"  # the seed report's tables ("seed" is accepted as an alias), large or deep
    arch: Literal["seed", "allconv"] | None = None  # layout; see the module docstring
    latent_dim: int = 2
    conv_channels: list[int] | None = None  # seed: three conv widths (strides 2, 1, 2); allconv: five (1, 2, 1, 2, 1)
    encoder_hidden: list[int] | None = None  # seed: dense widths after the convolutions; allconv: [width of the valid conv]
    decoder_hidden: list[int] | None = None  # seed: dense widths before the 7×7 map; allconv: [] (none)
    decoder_channels: list[int] | None = None  # allconv: five transposed-conv widths; seed: null (mirrors conv_channels)
    dropout: float | None = None
    beta: float = 1.0  # weight of the KL term (beta-VAE, Higgins et al. 2017); 1 = the ELBO
    latent_range: float = 1.0  # the decoded latent grid spans [-r, r]^2 (seed: 1)

    presets = VAE_PRESETS

    def __post_init__(self) -> None:
        self.preset = canonical_preset(self.preset)
        check(self.preset in self.presets, "model.preset", self.preset, ", ".join(self.presets))
        for key, value in self.presets[self.preset].items():
            if getattr(self, key) is None:
                setattr(self, key, list(value) if isinstance(value, list) else value)
        check(self.latent_dim >= 1, "model.latent_dim", self.latent_dim, "an integer >= 1")
        check(all(w >= 1 for w in self.encoder_hidden), "model.encoder_hidden", self.encoder_hidden, "positive integers")
        check(all(w >= 1 for w in self.decoder_hidden), "model.decoder_hidden", self.decoder_hidden, "positive integers")
        if self.arch == "seed":
            check(len(self.conv_channels) == 3 and min(self.conv_channels) >= 1, "model.conv_channels",
                  self.conv_channels, "three positive integers (model.arch=seed)")
            check(self.decoder_channels is None, "model.decoder_channels", self.decoder_channels,
                  "null with model.arch=seed (its decoder mirrors model.conv_channels)")
        else:
            n = len(ALLCONV_STRIDES)
            check(len(self.conv_channels) == n and min(self.conv_channels) >= 1, "model.conv_channels",
                  self.conv_channels, f"{n} positive integers (model.arch=allconv)")
            check(self.decoder_channels is not None and len(self.decoder_channels) == n
                  and min(self.decoder_channels) >= 1, "model.decoder_channels", self.decoder_channels,
                  f"{n} positive integers (model.arch=allconv)")
            check(len(self.encoder_hidden) == 1, "model.encoder_hidden", self.encoder_hidden,
                  "one width, of the final valid convolution (model.arch=allconv)")
            check(self.decoder_hidden == [], "model.decoder_hidden", self.decoder_hidden,
                  "[] with model.arch=allconv (its decoder starts with a transposed convolution)")
        check(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "a number in [0, 1)")
        check(self.beta >= 0.0, "model.beta", self.beta, "a number >= 0")
        check(self.latent_range > 0.0, "model.latent_range", self.latent_range, "a number > 0")


def _dense_stack(widths: list[int]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return layers


class ConvEncoder(nn.Module):
    """Image ``(N, C, S, S)`` → diagonal Gaussian ``(mu, logvar)``, each ``(N, latent_dim)``."""

    def __init__(self, in_channels: int, image_size: int, conv_channels: list[int], hidden: list[int],
                 latent_dim: int, dropout: float):
        super().__init__()
        c1, c2, c3 = conv_channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, stride=2, padding=1), nn.ReLU(), Dropout(dropout),
            nn.Conv2d(c1, c2, 3, stride=1, padding=1), nn.ReLU(), Dropout(dropout),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
            *_dense_stack([c3 * (image_size // 4) ** 2, *hidden]),
        )
        self.mean = nn.Linear(hidden[-1] if hidden else c3 * (image_size // 4) ** 2, latent_dim)
        self.log_var = nn.Linear(self.mean.in_features, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.mean(h), self.log_var(h)


class ConvDecoder(nn.Module):
    """Latent ``(N, in_features)`` → Bernoulli logits ``(N, C, S, S)``."""

    def __init__(self, in_features: int, hidden: list[int], conv_channels: list[int], out_channels: int,
                 image_size: int):
        super().__init__()
        c1, c2, c3 = conv_channels
        self.map_size = image_size // 4
        self.net = nn.Sequential(
            *_dense_stack([in_features, *hidden, c3 * self.map_size**2]),
            nn.Unflatten(1, (c3, self.map_size, self.map_size)),
            nn.ConvTranspose2d(c3, c3, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c3, c2, 3, stride=1, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c1, out_channels, 3, stride=1, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class AllConvEncoder(nn.Module):
    """Image ``(N, C, S, S)`` → ``(mu, logvar)``, each ``(N, latent_dim)``; S a multiple of 4.

    Five k3 convolutions (strides 1, 2, 1, 2, 1, widths ``conv_channels``) with ELU, then one
    (S/4)×(S/4) valid convolution to ``hidden[0]`` units (ELU) and linear heads (van den Berg et al.
    2018's layout with ELU k3 in place of gated k5 convolutions).
    """

    def __init__(self, in_channels: int, image_size: int, conv_channels: list[int], hidden: list[int],
                 latent_dim: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        for fan_in, fan_out, stride in zip([in_channels, *conv_channels[:-1]], conv_channels, ALLCONV_STRIDES):
            layers += [nn.Conv2d(fan_in, fan_out, 3, stride=stride, padding=1), nn.ELU()]
            if dropout:
                layers.append(Dropout(dropout))
        layers += [nn.Conv2d(conv_channels[-1], hidden[0], image_size // 4), nn.ELU(), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.mean = nn.Linear(hidden[0], latent_dim)
        self.log_var = nn.Linear(hidden[0], latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.mean(h), self.log_var(h)


class AllConvDecoder(nn.Module):
    """Latent ``(N, in_features)`` → Bernoulli logits ``(N, C, S, S)``; S a multiple of 4.

    A transposed (S/4)×(S/4) convolution from the latent (as a 1×1 map) to ``channels[0]``, five k3
    transposed convolutions (strides 1, 2, 1, 2, 1, widths ``channels``) with ELU, and a 1×1 output
    convolution. ``hidden`` must be empty (kept for the same signature as :class:`ConvDecoder`).
    """

    def __init__(self, in_features: int, hidden: list[int], channels: list[int], out_channels: int, image_size: int):
        super().__init__()
        if hidden:
            raise ValueError("AllConvDecoder has no dense layers: hidden must be []")
        layers: list[nn.Module] = [nn.Unflatten(1, (in_features, 1, 1)),
                                   nn.ConvTranspose2d(in_features, channels[0], image_size // 4), nn.ELU()]
        for fan_in, fan_out, stride in zip([channels[0], *channels[:-1]], channels, ALLCONV_STRIDES):
            layers += [nn.ConvTranspose2d(fan_in, fan_out, 3, stride=stride, padding=1, output_padding=stride - 1),
                       nn.ELU()]
        layers.append(nn.Conv2d(channels[-1], out_channels, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def encoder_class(arch: str) -> type[nn.Module]:
    """The encoder of layout ``model.arch`` (both take the same arguments)."""
    return {"seed": ConvEncoder, "allconv": AllConvEncoder}[arch]


def build_decoder(model: VAEConfig, in_features: int, out_channels: int, image_size: int) -> nn.Module:
    """The decoder of layout ``model.arch`` from ``in_features`` inputs (the latent, plus a label for a CVAE)."""
    if model.arch == "allconv":
        return AllConvDecoder(in_features, model.decoder_hidden, model.decoder_channels, out_channels, image_size)
    return ConvDecoder(in_features, model.decoder_hidden, model.conv_channels, out_channels, image_size)


class VAE(GenerativeModel):
    """Variational autoencoder with a Bernoulli decoder; objective recon + beta·KL, in nats per image."""

    family = "vae"

    def __init__(self, config: Config):
        super().__init__(config)
        d = config.data
        check(d.image_size % 4 == 0, "data.image_size", d.image_size, "a multiple of 4 (two stride-2 layers)")
        check(d.value_range == "unit", "data.value_range", d.value_range,
              "'unit' (a Bernoulli decoder models pixels in [0, 1])")
        self.encoder = self.build_encoder()
        self.decoder = self.build_decoder()
        self.optimizer = adam(self.parameters(), config.train.lr)  # seed: Keras Adam, lr 1e-3

    def build_encoder(self) -> nn.Module:
        m, d = self.config.model, self.config.data
        return encoder_class(m.arch)(d.channels, d.image_size, m.conv_channels, m.encoder_hidden, m.latent_dim,
                                     m.dropout)

    def build_decoder(self) -> nn.Module:
        m, d = self.config.model, self.config.data
        return build_decoder(m, m.latent_dim, d.channels, d.image_size)

    def networks(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.decoder}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"vae": self.optimizer}

    # Conditional subclasses pass labels; the VAE ignores them.
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None, train: bool = False):
        """``(mu, logvar)`` of q(z|x), each ``(N, latent_dim)``."""
        return (self.run("encoder") if train else self.encoder)(x)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None, train: bool = False) -> torch.Tensor:
        """Bernoulli logits ``(N, C, S, S)`` of p(x|z)."""
        return (self.run("decoder") if train else self.decoder)(z)

    def losses(self, x, y, eps, train: bool = False) -> dict[str, torch.Tensor]:
        """Per-image ``recon`` (nats), ``kl`` (nats) and ``loss`` = recon + beta·kl, each ``(N,)``."""
        with self.autocast():
            mu, logvar = self.encode(x, y, train)
            logits = self.decode(reparameterize(mu, logvar, eps.to(mu.dtype)), y, train)
        recon = bernoulli_nll(logits.float(), x)
        kl = gaussian_kl(mu.float(), logvar.float())
        return {"recon": recon, "kl": kl, "loss": recon + self.config.model.beta * kl}

    def train_step(self, batch, step):
        x = batch["image"]
        eps = self.noise.randn(x.shape[0], self.config.model.latent_dim).to(x.device)
        losses = self.losses(x, batch.get("label"), eps, train=True)
        self.step_optimizer("vae", losses["loss"].mean())
        return {k: float(v.detach().mean()) for k, v in losses.items()}

    @torch.no_grad()
    def eval_step(self, batch, generator):
        x = batch["image"]
        eps = torch.randn(x.shape[0], self.config.model.latent_dim, generator=generator).to(x.device)
        return {k: float(v.mean()) for k, v in self.losses(x, batch.get("label"), eps).items()}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Decoded posterior means: images ``(N, C, S, S)`` in [0, 1] for inputs ``x`` ``(N, C, S, S)``
        (``cond``: int64 ``(N,)`` labels for a conditional model)."""
        mu, _ = self.encode(x.to(self.device), None if cond is None else cond.to(self.device))
        return torch.sigmoid(self.decode(mu, None if cond is None else cond.to(self.device))).float()

    @torch.no_grad()
    def sample(self, n, cond=None, generator=None):
        z = torch.randn(n, self.config.model.latent_dim, generator=generator).to(self.device)
        return torch.sigmoid(self.decode(z, cond))

    @torch.no_grad()
    def decode_latent(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``(N, C, S, S)`` in [0, 1], the decoder's Bernoulli means ``sigmoid(decode(z))``, for latents
        ``z`` ``(N, latent_dim)`` (``cond``: int64 ``(N,)`` class labels, required by a CVAE)."""
        labels = None if cond is None else cond.to(self.device)
        return torch.sigmoid(self.decode(z.to(self.device).float(), labels)).float()


FAMILY = Family(
    name="vae", config_class=VAEConfig, model_class=VAE, data_kind="images",
    loss_names=("recon", "kl", "loss"), loss_units="nats / image",
    metrics=evaluate_vae, figures=write_vae_figures, abilities=frozenset({"sample", "reconstruct", "latent"}),
    summary="variational autoencoder (Kingma & Welling 2014); seed report 000, question 1",
)
