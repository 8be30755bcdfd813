"""Conditional VAE (Sohn et al. 2015) with the seed report's architecture as preset ``seed``.

Seed report 000, section 1.7: the one-hot label (10) goes through Dense 784, is reshaped to a
28×28 map and concatenated with the image as a second channel; the rest of the encoder is the
VAE's. The decoder concatenates z with the one-hot label (2 + 10 = 12) → Dense 6272 → the VAE's
transposed convolutions (321,665 parameters; the seed's table omits the ConvT-64 row but its total
counts it).

The seed's encoder table has typos: Dense 784 "6824" (10·784 + 784 = 8,624), first Conv "668"
(2·9·32 + 32 = 608) and total "584,164"; the structure it describes has **504,164** parameters,
which is what this module builds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.analysis.vae_figures import write_vae_figures
from genlab.eval.vae_metrics import evaluate_vae
from genlab.family import Family
from genlab.models.vae import VAE, VAE_PRESETS, VAEConfig, build_decoder, encoder_class
from genlab.schema import check

CVAE_PRESETS = {
    "lab-report": {**VAE_PRESETS["lab-report"], "decoder_hidden": []},  # seed decoder: [z, y] → 6272 directly
    "large": VAE_PRESETS["large"],
    "deep": VAE_PRESETS["deep"],
}


@dataclass
class CVAEConfig(VAEConfig):
    """Model section of a CVAE config (adds the number of classes)."""

    family: str = "cvae"
    num_classes: int = 10

    presets = CVAE_PRESETS

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.num_classes >= 2, "model.num_classes", self.num_classes, "an integer >= 2")


class LabelConditionedEncoder(nn.Module):
    """(image ``(N, C, S, S)``, label ``(N,)``) → ``(mu, logvar)``; the label becomes an extra channel."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int, arch: str = "seed", **encoder_args):
        super().__init__()
        self.num_classes, self.image_size = num_classes, image_size
        self.label_map = nn.Linear(num_classes, image_size * image_size)
        self.body = encoder_class(arch)(in_channels + 1, image_size, **encoder_args)

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        onehot = F.one_hot(y, self.num_classes).to(x.dtype)
        label_plane = self.label_map(onehot).view(-1, 1, self.image_size, self.image_size)
        return self.body(torch.cat([x, label_plane], dim=1))


class LabelConditionedDecoder(nn.Module):
    """(z ``(N, D)``, label ``(N,)``) → logits; z is concatenated with the one-hot label."""

    def __init__(self, num_classes: int, body: nn.Module):
        super().__init__()
        self.num_classes = num_classes
        self.body = body  # a decoder taking latent_dim + num_classes inputs

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], dim=1))


class CVAE(VAE):
    """VAE whose encoder and decoder both see the class label; ``sample`` takes labels as ``cond``."""

    family = "cvae"

    @property
    def num_classes(self) -> int:  # type: ignore[override]
        return self.config.model.num_classes

    def build_encoder(self) -> nn.Module:
        m, d = self.config.model, self.config.data
        return LabelConditionedEncoder(m.num_classes, d.channels, d.image_size, arch=m.arch,
                                       conv_channels=m.conv_channels, hidden=m.encoder_hidden,
                                       latent_dim=m.latent_dim, dropout=m.dropout)

    def build_decoder(self) -> nn.Module:
        m, d = self.config.model, self.config.data
        return LabelConditionedDecoder(m.num_classes, build_decoder(m, m.latent_dim + m.num_classes, d.channels,
                                                                    d.image_size))

    def encode(self, x, y=None, train=False):
        return (self.run("encoder") if train else self.encoder)(x, self._labels(y))

    def decode(self, z, y=None, train=False):
        return (self.run("decoder") if train else self.decoder)(z, self._labels(y))

    def _labels(self, y):
        if y is None:
            raise ValueError("a CVAE needs class labels (batch['label'] or sample(cond=...))")
        return y

    @torch.no_grad()
    def sample(self, n, cond=None, generator=None):
        if cond is None:  # no labels asked for: cycle through the classes
            cond = torch.arange(n) % self.num_classes
        return super().sample(n, cond.to(self.device), generator)


FAMILY = Family(
    name="cvae", config_class=CVAEConfig, model_class=CVAE, data_kind="images",
    loss_names=("recon", "kl", "loss"), loss_units="nats / image",
    metrics=evaluate_vae, figures=write_vae_figures, abilities=frozenset({"sample", "classes", "reconstruct", "latent"}),
    summary="conditional VAE (Sohn et al. 2015); seed report 000, section 1.7",
)
