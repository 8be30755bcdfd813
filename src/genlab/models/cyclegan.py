"""CycleGAN (Zhu et al., ICCV 2017): unpaired image-to-image translation between domains A and B.

Two generators, ``G_A``: A → B and ``G_B``: B → A, and two PatchGAN discriminators, ``D_A`` (real B
vs ``G_A(A)``) and ``D_B`` (real A vs ``G_B(B)``), named as in the reference implementation
(junyanz/pytorch-CycleGAN-and-pix2pix). Objective (paper §3-4, reference defaults):

* adversarial: least squares (LSGAN, Mao et al. 2017; paper §4 "we replace the negative log
  likelihood objective by a least-squares loss"): G minimises E(D(G(x)) − 1)², D minimises
  E(D(y) − 1)² + E D(G(x))², per patch, without Mao's ½ (as the paper and the reference's ``MSELoss``);
* cycle consistency ``λ · ‖G_B(G_A(a)) − a‖₁`` and ``λ · ‖G_A(G_B(b)) − b‖₁``, λ = 10 (paper §7.1);
* identity ``λ · λ_id · ‖G_A(b) − b‖₁`` (and for G_B), λ_id = 0.5 (paper §5.2, reference
  ``--lambda_identity 0.5``); needs both domains to have the same number of channels;
* D loss halved ("we divide the objective by 2 while optimizing D", §7.1), D trained on a pool of
  the 50 last generated images (Shrivastava et al. 2017; §4);
* Adam lr 2e-4, β = (0.5, 0.999); constant lr, then linear decay to 0 over ``model.decay_epochs``
  (the reference's ``n_epochs`` + ``n_epochs_decay`` = 100 + 100; here ``train.epochs`` in all);
  weights N(0, 0.02) (§7.1);
* training jitter: enlarge by 286/256, random crop back, random horizontal flip (§7.1), at any
  image size (:func:`genlab.data.transforms.random_jitter`).

Networks (:mod:`genlab.nn`): ``model.generator`` = ``resnet_9`` (paper, 256 px), ``resnet_6``
(paper, 128 px and below) or ``unet``; ``model.discriminator`` = ``patch70`` (paper) or ``seed``.
Preset ``lab-report`` (alias ``seed``) is seed report 000, question 2: its U-Net (at 256×256 the layout of
:meth:`~genlab.nn.unet.UNetGenerator.seed`; smaller images use the same layout with fewer halvings)
and its PatchGAN table (2,766,529 parameters at 256×256×3). ``model.upsample=resize`` replaces the
generators' transposed convolutions by nearest up-sampling + convolution (Odena et al. 2016,
"Deconvolution and checkerboard artifacts").

Several processes: each keeps its own image pools (as the reference under DDP); every other random
choice (jitter, pool draws, B partners) comes from the shared noise, so only the pools' contents
differ from a one-process run with the global batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genlab.adversarial.steps import Tricks, discriminator_loss, generator_loss
from genlab.adversarial.tricks import check_diffaug
from genlab.analysis.cyclegan_figures import cycle_rows, write_cyclegan_figures
from genlab.data.transforms import JITTER_RATIO, random_jitter
from genlab.eval.translation_metrics import evaluate_translation
from genlab.family import Family
from genlab.models.base import GenerativeModel, PreviewGrid, adam
from genlab.nn.init import init_normal_
from genlab.nn.patchgan import PatchDiscriminator
from genlab.nn.resnet_gen import ResnetGenerator
from genlab.nn.unet import UNetGenerator, _two_adic
from genlab.schema import Config, ModelConfig, canonical_preset, check

#: preset → defaults of the ``None`` fields of :class:`CycleGANConfig`
CYCLEGAN_PRESETS = {
    "paper": {"generator": "resnet_9", "discriminator": "patch70"},
    "lab-report": {"generator": "unet", "discriminator": "seed"},
}
DIRECTIONS = ("AtoB", "BtoA")
#: factor from :mod:`genlab.adversarial.losses`' terms to the paper's: its least-squares terms are
#: Mao et al.'s ½(D − t)², the CycleGAN paper's (§4) and the reference's ``MSELoss`` are (D − t)²,
#: so that G's adversarial term weighs 1 against the cycle term's λ = 10, as in eq. (3)
PAPER_LOSS_SCALE = {"lsgan": 2.0, "bce": 1.0, "hinge": 1.0}


@dataclass
class CycleGANConfig(ModelConfig):
    """Model section of a CycleGAN config; ``None`` fields take the preset's value."""

    family: str = "cyclegan"
    preset: str = "paper"  # paper: Zhu et al. 2017 (ResNet G, 70×70 PatchGAN); lab-report (alias seed): seed report 000 (U-Net, its PatchGAN)
    generator: Literal["unet", "resnet_6", "resnet_9"] | None = None
    discriminator: Literal["patch70", "seed"] | None = None
    ngf: int = 64  # generator base width (paper 64)
    ndf: int = 64  # discriminator base width (paper 64; the seed table fixes 64)
    upsample: Literal["deconv", "resize"] = "deconv"  # resize: nearest ×2 + conv, against checkerboard artifacts
    lambda_cycle: float = 10.0  # λ of both cycle terms (paper §7.1)
    lambda_identity: float = 0.5  # λ_id, relative to λ (paper §5.2); 0 = off
    pool_size: int = 50  # past fakes D trains on (§4); 0 = the current batch only
    loss: Literal["lsgan", "bce", "hinge"] = "lsgan"
    betas: list[float] | None = None  # Adam; null = (0.5, 0.999)
    decay_epochs: int | None = None  # final epochs of linear lr decay to 0; null = half of train.epochs (100 + 100)
    jitter: bool = True  # enlarge by 286/256, random crop, random flip (§7.1)
    # DiffAugment on both Ds' images, real and fake, in the D and the G step (Zhao et al. 2020; not in the
    # paper), e.g. "translation,cutout"; "color" would hide the colour shifts the translation must make
    diffaug: str | None = None

    def __post_init__(self) -> None:
        self.preset = canonical_preset(self.preset)
        check(self.preset in CYCLEGAN_PRESETS, "model.preset", self.preset, ", ".join(CYCLEGAN_PRESETS))
        for key, value in CYCLEGAN_PRESETS[self.preset].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.betas is None:
            self.betas = [0.5, 0.999]
        check(self.ngf >= 1, "model.ngf", self.ngf, "an integer >= 1")
        check(self.ndf >= 1, "model.ndf", self.ndf, "an integer >= 1")
        check(self.discriminator != "seed" or self.ndf == 64, "model.ndf", self.ndf,
              "64 with model.discriminator=seed (its table fixes the widths)")
        check(self.lambda_cycle >= 0, "model.lambda_cycle", self.lambda_cycle, "a number >= 0")
        check(self.lambda_identity >= 0, "model.lambda_identity", self.lambda_identity, "a number >= 0")
        check(self.pool_size >= 0, "model.pool_size", self.pool_size, "an integer >= 0")
        check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "model.betas", self.betas,
              "two numbers in [0, 1)")
        check(self.decay_epochs is None or self.decay_epochs >= 0, "model.decay_epochs", self.decay_epochs,
              "an integer >= 0 or null (half of train.epochs)")
        check_diffaug(self.diffaug)


class ImagePool:
    """The last ``size`` generated images; D sees a mix of new and old ones (Shrivastava et al. 2017).

    For each new image: while the pool is not full, store and return it; then, with probability ½,
    return a random stored image and store the new one in its place, else return the new image
    (the reference's ``ImagePool``). Randomness from ``noise`` (one coin and one slot per image).
    """

    def __init__(self, size: int):
        self.size = size
        self.images = torch.zeros(0)

    def query(self, images: torch.Tensor, noise) -> torch.Tensor:
        """Images ``(N, C, H, W)`` (detached) → the batch D trains on, same shape."""
        images = images.detach()
        if self.size == 0:
            return images
        n = images.shape[0]
        coins, slots = noise.rand(n), noise.randint(n, self.size)
        out = []
        for image, coin, slot in zip(images, coins.tolist(), slots.tolist()):
            if len(self.images) < self.size:
                stored = image[None].float().cpu()
                self.images = torch.cat([self.images, stored]) if len(self.images) else stored
                out.append(image)
            elif coin < 0.5:
                out.append(self.images[slot].to(image))
                self.images[slot] = image.float().cpu()
            else:
                out.append(image)
        return torch.stack(out)


def _join(first: torch.Tensor, second: torch.Tensor | None) -> torch.Tensor:
    """``first`` and, if given, ``second`` as one batch (concatenated along N)."""
    return first if second is None else torch.cat([first, second])


def _split(batch: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Undo :func:`_join`: the first ``n`` images, and the rest (``None`` if there are none)."""
    return batch[:n], (batch[n:] if len(batch) > n else None)


class CycleGAN(GenerativeModel):
    """Generators ``G_A`` (A → B), ``G_B`` (B → A); discriminators ``D_A`` (on B), ``D_B`` (on A).

    Images are in [-1, 1] (``data.value_range: symmetric``); :meth:`translate` takes and returns
    [0, 1]. Loss names (the reference's, and the seed's eight curves): ``D_A``, ``G_A``, ``cycle_A``,
    ``idt_A``, ``D_B``, ``G_B``, ``cycle_B``, ``idt_B``.
    """

    family = "cyclegan"

    def __init__(self, config: Config):
        super().__init__(config)
        m, d = config.model, config.data
        check(d.value_range == "symmetric", "data.value_range", d.value_range,
              "'symmetric' (the generators' tanh output is in [-1, 1])")
        self.channels_a, self.channels_b = d.channels, d.domain_b_channels
        check(m.lambda_identity == 0 or self.channels_a == self.channels_b, "model.lambda_identity", m.lambda_identity,
              f"0 when the domains differ in channels (data.channels={self.channels_a}, "
              f"data.channels_b={self.channels_b}): G_A(b) cannot be compared with b")
        with torch.random.fork_rng(devices=[]):  # the same networks on every rank, from config.seed alone
            torch.manual_seed(config.seed)
            self.G_A = init_normal_(self._generator(self.channels_a, self.channels_b))
            self.G_B = init_normal_(self._generator(self.channels_b, self.channels_a))
            self.D_A = init_normal_(self._discriminator(self.channels_b))
            self.D_B = init_normal_(self._discriminator(self.channels_a))
        check(d.image_size % self.stride_multiple == 0, "data.image_size", d.image_size,
              f"a multiple of {self.stride_multiple} for model.generator={m.generator}")
        check(min(self.D_A.output_size(d.image_size, d.image_size)) >= 1, "data.image_size", d.image_size,
              f"at least 32 for model.discriminator={m.discriminator} (its logit map would be empty)")
        betas = tuple(m.betas)
        self.g_optimizer = adam([*self.G_A.parameters(), *self.G_B.parameters()], config.train.lr, betas)
        self.d_optimizer = adam([*self.D_A.parameters(), *self.D_B.parameters()], config.train.lr, betas)
        self.tricks = Tricks.from_config(m)  # loss and diffaug
        self.pool_A, self.pool_B = ImagePool(m.pool_size), ImagePool(m.pool_size)  # fakes of A, of B

    def _generator(self, c_in: int, c_out: int) -> nn.Module:
        m, size = self.config.model, self.config.data.image_size
        if m.generator.startswith("resnet"):
            return ResnetGenerator(c_in, c_out, ngf=m.ngf, n_blocks=int(m.generator.split("_")[1]), upsample=m.upsample)
        if m.preset == "lab-report":  # the seed's layout; 8 halvings at 256 px, fewer below
            seed = UNetGenerator.seed(c_in, c_out, upsample=m.upsample)
            return seed if size % 256 == 0 else UNetGenerator(
                c_in, c_out, num_downs=min(8, _two_adic(size)), ngf=m.ngf, norm="instance", upsample=m.upsample,
                kernel_size=3, encoder_slope=0.0, norm_affine=True, norm_eps=1e-3, norm_innermost=True, bias=True,
                padding="keras")
        return UNetGenerator(c_in, c_out, image_size=size, ngf=m.ngf, upsample=m.upsample)

    def _discriminator(self, channels: int) -> nn.Module:
        m = self.config.model
        return PatchDiscriminator.seed(channels) if m.discriminator == "seed" else \
            PatchDiscriminator.paper(channels, m.ndf)

    @property
    def stride_multiple(self) -> int:
        """Input sides must be multiples of this (the generators' total down-sampling)."""
        return self.G_A.stride_multiple

    def networks(self) -> dict[str, nn.Module]:
        return {"G_A": self.G_A, "G_B": self.G_B, "D_A": self.D_A, "D_B": self.D_B}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generators": self.g_optimizer, "discriminators": self.d_optimizer}

    def set_lr_schedule(self, schedule: str, total_steps: int) -> None:
        """Constant lr, then linear decay to 0 over the last ``model.decay_epochs`` epochs (reference
        ``--lr_policy linear``), per step; ``train.lr_schedule`` must stay ``constant``."""
        check(schedule == "constant", "train.lr_schedule", schedule,
              "constant (CycleGAN decays the lr linearly over model.decay_epochs)")
        epochs = self.config.train.epochs
        decay_epochs = epochs // 2 if self.config.model.decay_epochs is None else self.config.model.decay_epochs
        check(decay_epochs <= epochs, "model.decay_epochs", decay_epochs, f"at most train.epochs ({epochs})")
        total = max(1, total_steps)
        decay_steps = total * decay_epochs / epochs

        def factor(step: int) -> float:
            return 1.0 if decay_steps == 0 else min(1.0, max(0.0, (total - step) / decay_steps))

        self._schedulers = {name: torch.optim.lr_scheduler.LambdaLR(opt, factor)
                            for name, opt in self.optimizers().items()}
        self.schedule_spans_run = decay_steps > 0

    # --- training ---------------------------------------------------------------------------------
    def train_step(self, batch, step):
        """One G update (both generators, D frozen), then one D update (both Ds, on pooled fakes).

        ``batch``: ``image`` (A) and ``image_b`` (B), ``(N, C, S, S)`` in [-1, 1]. Returns the eight
        weighted loss terms (per-patch means), as the reference logs them.
        """
        m = self.config.model
        real_a, real_b = batch["image"], batch["image_b"]
        if m.jitter:
            real_a, real_b = random_jitter(real_a, self.noise, JITTER_RATIO), random_jitter(real_b, self.noise, JITTER_RATIO)
        lam, lam_id = m.lambda_cycle, m.lambda_cycle * m.lambda_identity
        scale = PAPER_LOSS_SCALE[m.loss]
        g_a, g_b = self.run("G_A"), self.run("G_B")
        with self.autocast():
            fake_b, fake_a = g_a(real_a), g_b(real_b)
            # each generator's second pass takes the cycle and the identity inputs as one batch
            # (G_A(b): G_A should leave B images alone); instance norm is per image, so this equals
            # two passes, and one batch of 2N runs small convolutions faster than two of N
            rec_b, idt_a = _split(g_a(_join(fake_a, real_b if lam_id else None)), len(fake_a))
            rec_a, idt_b = _split(g_b(_join(fake_b, real_a if lam_id else None)), len(fake_b))
        out = {
            "G_A": scale * generator_loss(self.D_A, fake_b, self.tricks, step, self.noise, autocast=self.autocast)[0],
            "G_B": scale * generator_loss(self.D_B, fake_a, self.tricks, step, self.noise, autocast=self.autocast)[0],
            "cycle_A": lam * F.l1_loss(rec_a.float(), real_a),
            "cycle_B": lam * F.l1_loss(rec_b.float(), real_b),
            "idt_A": lam_id * F.l1_loss(idt_a.float(), real_b) if lam_id else torch.zeros((), device=real_a.device),
            "idt_B": lam_id * F.l1_loss(idt_b.float(), real_a) if lam_id else torch.zeros((), device=real_a.device),
        }
        self.step_optimizer("generators", sum(out.values()))
        pooled_b, pooled_a = self.pool_B.query(fake_b, self.noise), self.pool_A.query(fake_a, self.noise)
        # real and fake in one batch: the same as two passes, as D's instance norm is per image
        d_a = 0.5 * scale * discriminator_loss(self.run("D_A"), real_b, pooled_b, self.tricks, step, self.noise,
                                               autocast=self.autocast, separate=False)[0]
        d_b = 0.5 * scale * discriminator_loss(self.run("D_B"), real_a, pooled_a, self.tricks, step, self.noise,
                                               autocast=self.autocast, separate=False)[0]
        self.step_optimizer("discriminators", d_a + d_b)
        out |= {"D_A": d_a, "D_B": d_b}
        return {name: float(out[name].detach()) for name in FAMILY.loss_names}

    @torch.no_grad()
    def eval_step(self, batch, generator):
        """Weighted cycle and identity terms on held-out images (no adversarial terms: no D update)."""
        m = self.config.model
        real_a, real_b = batch["image"], batch["image_b"]
        fake_b, fake_a = self.G_A(real_a), self.G_B(real_b)
        out = {"cycle_A": m.lambda_cycle * F.l1_loss(self.G_B(fake_b), real_a),
               "cycle_B": m.lambda_cycle * F.l1_loss(self.G_A(fake_a), real_b)}
        if m.lambda_identity:
            lam_id = m.lambda_cycle * m.lambda_identity
            out |= {"idt_A": lam_id * F.l1_loss(self.G_A(real_b), real_b),
                    "idt_B": lam_id * F.l1_loss(self.G_B(real_a), real_a)}
        return {k: float(v) for k, v in out.items()}

    def extra_state(self):
        """Both image pools (this process's): part of exact resume."""
        return {"pool_A": self.pool_A.images.clone(), "pool_B": self.pool_B.images.clone()}

    def load_extra_state(self, state):
        self.pool_A.images, self.pool_B.images = state["pool_A"].clone(), state["pool_B"].clone()

    # --- use --------------------------------------------------------------------------------------
    def generator_for(self, direction: str) -> nn.Module:
        """``G_A`` for ``AtoB``, ``G_B`` for ``BtoA``."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        return self.G_A if direction == "AtoB" else self.G_B

    @torch.no_grad()
    def translate(self, images: torch.Tensor, direction: str = "AtoB", native: bool = False) -> torch.Tensor:
        """Translate images ``(N, C, H, W)`` in [0, 1] of any size; returns ``(N, C', H, W)`` in [0, 1].

        Default: resized to the training size (``data.image_size``, bilinear, antialiased), translated,
        resized back. ``native``: translated at their own resolution (the generators are fully
        convolutional), reflect-padded to a multiple of :attr:`stride_multiple` and cropped back (the
        reference's ``--preprocess none``).
        """
        net = self.generator_for(direction)
        x = images.to(self.device, torch.float32) * 2.0 - 1.0
        h, w = x.shape[-2:]
        if native:
            k = self.stride_multiple
            pad_h, pad_w = math.ceil(h / k) * k - h, math.ceil(w / k) * k - w
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            y = net(F.pad(x, (0, pad_w, 0, pad_h), mode=mode))[..., :h, :w]
        else:
            s = self.config.data.image_size
            y = net(F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False))
            if (h, w) != (s, s):
                y = F.interpolate(y, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        return ((y.float() + 1.0) / 2.0).clamp_(0.0, 1.0)

    @torch.no_grad()
    def cycle(self, images: torch.Tensor, direction: str = "AtoB") -> tuple[torch.Tensor, torch.Tensor]:
        """``(G(x), F(G(x)))`` of images in [0, 1] at the training size, both in [0, 1]."""
        other = "BtoA" if direction == "AtoB" else "AtoB"
        there = self.translate(images, direction)
        return there, self.translate(there, other)

    @torch.no_grad()
    def preview(self, data, generator):
        """Fixed test images, both directions: rows of real | translated | reconstructed."""
        return {direction: PreviewGrid(rows, nrow=3) for direction, rows in cycle_rows(self, data, 8).items()}


FAMILY = Family(
    name="cyclegan", config_class=CycleGANConfig, model_class=CycleGAN, data_kind="unpaired",
    loss_names=("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"), loss_units=None,
    metrics=evaluate_translation, figures=write_cyclegan_figures, abilities=frozenset({"translate"}),
    summary="unpaired image-to-image translation (Zhu et al. 2017); seed report 000, question 2",
)
