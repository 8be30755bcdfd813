"""StackGAN: text to image in two stages (Zhang et al., "StackGAN: Text to Photo-realistic Image
Synthesis with Stacked Generative Adversarial Networks", ICCV 2017); seed report 000, question 3.

**Stage-I** (``model.stage: 1``): G₀(z, ĉ₀) draws a low-resolution image from noise z ~ N(0, I)
and a conditioning code ĉ₀ = μ₀(φ_t) + σ₀(φ_t) ⊙ ε (Conditioning Augmentation, §3.1) of the
caption embedding φ_t; D₀ judges (image, text) pairs. **Stage-II** (``model.stage: 2``): G(s₀, ĉ)
refines the Stage-I image s₀ = G₀(z, ĉ₀) to ``model.upscale`` times the size with its own CA
(§3.3); G₀ is frozen. Networks: :mod:`genlab.models.stackgan_nets`; losses:
:mod:`genlab.models.stackgan_losses`.

**Training step** (the authors' StackGAN-Pytorch ``trainer.py``): one G forward per batch, then
one D update on three pairs — real image + its caption, real image + a caption of another image
(``wrong``, drawn by the data source from the shared noise) and generated image + caption —
with ``d_loss = real + ½(fake + wrong)`` (Stage-II D also has an unconditional head:
``(real + uncond_real)/2 + (fake + wrong + uncond_fake)/3``), then one G update through the
updated D: ``g_loss = g_adv + model.kl_coeff · kl``. D is conditioned on G's CA mean μ, detached
(``model.d_condition: mu``, the authors' code); ``embedding`` feeds the raw φ_t through D's own
FC + LeakyReLU as the paper §4 describes. The mismatched condition is μ of the wrong caption under
the same G's CA (the authors shift μ by one in the batch).

**KL weighting, precisely**: ``kl`` is KL(N(μ, σ²) ‖ N(0, I)) of the CA code averaged over the
batch *and* over the ``c_dim`` code dimensions (``model.kl_reduction: mean``, the authors'
``KL_loss``, nats per dimension), weighted by ``model.kl_coeff`` = 2.0 (``cfg.TRAIN.COEFF.KL``):
that is 2/c_dim per nat of the paper's D_KL (2/128 = 0.0156 at the authors' c_dim). ``kl_reduction:
sum`` with ``kl_coeff: 1`` is the paper's λ = 1 on the summed KL (§3.2). ``model.conditioning_augmentation:
false`` is the paper's ablation "without CA" (§5.2, Table 2): ĉ = μ(φ_t), no ε, no KL term (``kl``
is still logged). The logged ``kl`` is the
reduced value that is weighted; ``g_adv`` is the adversarial part and ``g_loss`` their weighted sum
(as the seed's Keras log ``g_loss: [total, adversarial, kl]``, whose total is adv + 2·kl).

**Optimisation**: Adam, lr ``train.lr`` (2e-4), β = (0.5, 0.999); both learning rates halve every
``model.lr_decay_epochs`` epochs (authors' ``LR_DECAY_EPOCH``: 20 with 120 epochs in their
``cfg/coco_s1.yml``; paper §4: every 100 of 600 epochs); a per-step LambdaLR that the loop
checkpoints, so resume is exact.

**Stage-II runs** name their Stage-I run in ``model.stage1_run``; a fresh Stage-II run copies that
run's generator into its own ``stage1.*`` weights (:meth:`StackGAN.weight_sources`), so it samples
without the Stage-I folder. The frozen G₀ stays in eval mode (BatchNorm uses its trained running
statistics, which therefore stay bit-identical); the authors' frozen ``STAGE1_G`` sits inside
``STAGE2_G`` and follows its train mode.

Presets: ``authors`` — StackGAN-Pytorch's ``config.py`` (ngf 128, ndf 64, c_dim 128, z 100,
3×3 joint conv), ``R_NUM`` 2 (``cfg/coco_s2.yml``), KL 2.0, decay every 20 epochs; ``cpu`` — the
same layers at ngf = ndf = 32, c_dim 64 and one residual block, for minutes-long epochs on 2 cores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import yaml

from genlab.adversarial.losses import GAN_LOSSES
from genlab.adversarial.steps import Tricks, batch_statistics, d_input, generator_loss
from genlab.adversarial.tricks import check_diffaug, real_targets
from genlab.analysis.stackgan_figures import write_stackgan_figures
from genlab.data.captioned import text_dim, text_encoder_for
from genlab.errors import ConfigError, GenlabError
from genlab.eval.stackgan_metrics import evaluate_stackgan
from genlab.family import Family
from genlab.models.base import GenerativeModel, PreviewGrid, WeightSource, adam
from genlab.models.stackgan_losses import kl_term, matching_aware_d_loss
from genlab.models.stackgan_nets import (
    MatchingAwareDiscriminator,
    Stage1Discriminator,
    Stage1Generator,
    Stage2Discriminator,
    Stage2Generator,
)
from genlab.schema import Config, ModelConfig, check

#: preset → defaults of the ``None`` fields of :class:`StackGANConfig`
STACKGAN_PRESETS: dict[str, dict] = {
    "authors": {"ngf": 128, "ndf": 64, "c_dim": 128, "z_dim": 100, "res_blocks": 2, "joint_kernel": 3,
                "lr_decay_epochs": 20},
    "cpu": {"ngf": 32, "ndf": 32, "c_dim": 64, "z_dim": 100, "res_blocks": 1, "joint_kernel": 3,
            "lr_decay_epochs": 20},
}
#: preview: captions (rows) and samples per caption (after the real image in column 0)
PREVIEW_CAPTIONS, PREVIEW_SAMPLES = 8, 7


@dataclass
class StackGANConfig(ModelConfig):
    """Model section of a StackGAN config. ``None`` fields take the value of ``preset``."""

    family: str = "stackgan"
    preset: str = "authors"  # authors: StackGAN-Pytorch's sizes; cpu: narrower, same layers
    stage: int = 1  # 1: G₀/D₀ at data.image_size; 2: refine a frozen Stage-I run to data.image_size
    stage1_run: str | None = None  # stage 2: the Stage-I run directory whose generator is copied in
    ngf: int | None = None  # generator width (Stage-I: 8·ngf channels at 4×4; Stage-II: encoder ngf..4·ngf)
    ndf: int | None = None  # discriminator width (8·ndf channels at 4×4)
    stage1_ngf: int | None = None  # stage 2: the Stage-I generator's ngf; null = model.ngf
    c_dim: int | None = None  # conditioning code size N_g (paper: 128)
    z_dim: int | None = None  # noise size N_z (paper: 100)
    res_blocks: int | None = None  # Stage-II residual blocks
    upscale: int = 2  # stage 2: output side / Stage-I side (paper: 4, 64 → 256)
    joint_kernel: int | None = None  # D's joint image-text conv: 3 (StackGAN-Pytorch) or 1 (paper, TF code)
    d_condition: Literal["mu", "embedding"] = "mu"  # D's text input: G's CA mean μ, detached (code) or φ_t (paper)
    kl_coeff: float = 2.0  # weight of the CA KL term in G's loss (cfg.TRAIN.COEFF.KL)
    #: false: the paper's "without CA" ablation (§5.2, Table 2): ĉ = μ(φ_t), no ε and no KL term in G's loss
    conditioning_augmentation: bool = True
    kl_reduction: Literal["mean", "sum"] = "mean"  # mean over batch and code dims (code) or sum over dims (paper)
    lr_decay_epochs: int | None = None  # halve both learning rates every N epochs; 0 = constant
    g_lr: float | None = None  # null: train.lr
    d_lr: float | None = None
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])  # Adam (authors: 0.5, 0.999)
    loss: Literal["bce", "lsgan", "hinge"] = "bce"  # bce: the authors' BCELoss on sigmoid(D)
    label_smoothing: float | None = None  # real-pair target (e.g. 0.9); null = 1
    diffaug: str | None = None  # DiffAugment policy on D's images (Zhao et al. 2020), e.g. "translation"

    def __post_init__(self) -> None:
        check(self.preset in STACKGAN_PRESETS, "model.preset", self.preset, ", ".join(STACKGAN_PRESETS))
        for key, value in STACKGAN_PRESETS[self.preset].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.stage1_ngf is None:
            self.stage1_ngf = self.ngf
        check(self.stage in (1, 2) and not isinstance(self.stage, bool), "model.stage", self.stage, "1 or 2")
        check(self.stage == 1 or bool(self.stage1_run), "model.stage1_run", self.stage1_run,
              "the run directory of a trained Stage-I model (required with model.stage=2)")
        for key in ("ngf", "ndf", "stage1_ngf", "c_dim", "z_dim"):
            check(getattr(self, key) >= 1, f"model.{key}", getattr(self, key), "an integer >= 1")
        check(self.res_blocks >= 0, "model.res_blocks", self.res_blocks, "an integer >= 0")
        check(self.upscale in Stage2Generator.UPSCALES, "model.upscale", self.upscale, "2 or 4")
        check(self.joint_kernel in (1, 3), "model.joint_kernel", self.joint_kernel, "1 (paper) or 3 (StackGAN-Pytorch)")
        check(self.kl_coeff >= 0, "model.kl_coeff", self.kl_coeff, "a number >= 0")
        check(self.lr_decay_epochs >= 0, "model.lr_decay_epochs", self.lr_decay_epochs, "an integer >= 0 (0 = constant)")
        for key in ("g_lr", "d_lr"):
            value = getattr(self, key)
            check(value is None or value > 0, f"model.{key}", value, "a number > 0 or null (= train.lr)")
        check(len(self.betas) == 2 and all(0.0 <= b < 1.0 for b in self.betas), "model.betas", self.betas,
              "two numbers in [0, 1), e.g. [0.5, 0.999]")
        check(self.label_smoothing is None or 0.0 < self.label_smoothing <= 1.0, "model.label_smoothing",
              self.label_smoothing, "null or a target in (0, 1], e.g. 0.9")
        check_diffaug(self.diffaug)


def _size_error(config: Config, exc: ValueError) -> ConfigError:
    m, d = config.model, config.data
    return ConfigError(f"config keys 'data.image_size' ({d.image_size}), 'model.ngf' ({m.ngf}), 'model.ndf' ({m.ndf})"
                       f"{', model.upscale (' + str(m.upscale) + ')' if m.stage == 2 else ''} do not fit the "
                       f"StackGAN networks: {exc}")


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    return ((images.float() + 1.0) / 2.0).clamp_(0.0, 1.0)


class StackGAN(GenerativeModel):
    """StackGAN Stage-I or Stage-II (see the module docstring).

    ``networks()`` = ``{"generator", "discriminator"}`` (the stage being trained); a Stage-II model
    also holds the frozen Stage-I generator as the submodule ``stage1`` (checkpointed, not trained).
    Images are in [-1, 1] (``data.value_range: symmetric``).
    """

    family = "stackgan"
    drop_last = True  # BatchNorm1d in G₀'s first layer cannot train on a batch of one

    def __init__(self, config: Config):
        super().__init__(config)
        m, d = config.model, config.data
        check(d.value_range == "symmetric", "data.value_range", d.value_range,
              "'symmetric' (the generators' tanh output is in [-1, 1])")
        check(m.stage == 1 or d.image_size % m.upscale == 0, "data.image_size", d.image_size,
              f"a multiple of model.upscale={m.upscale} (the Stage-II output size)")
        check(not (m.lr_decay_epochs and config.train.lr_schedule != "constant"), "train.lr_schedule",
              config.train.lr_schedule, "constant when model.lr_decay_epochs > 0 (set model.lr_decay_epochs=0 "
              "to use another schedule)")
        self.text_dim = text_dim(d)
        self.stage1_size = d.image_size // m.upscale if m.stage == 2 else d.image_size
        self._encoder = None  # the text encoder, built on first use (sample(text=...))
        condition_dim = self.text_dim if m.d_condition == "embedding" else None
        # Initialise from config.seed alone (as the GAN family): every DDP rank builds the same
        # networks, and the loop's global RNG stream is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            try:
                if m.stage == 1:
                    self.stage1 = None
                    self.generator = Stage1Generator(self.text_dim, m.z_dim, m.c_dim, m.ngf, d.image_size, d.channels)
                    net = Stage1Discriminator(m.c_dim, m.ndf, d.image_size, d.channels, condition_dim=condition_dim,
                                              joint_kernel=m.joint_kernel)
                else:
                    self.stage1 = Stage1Generator(self.text_dim, m.z_dim, m.c_dim, m.stage1_ngf, self.stage1_size,
                                                  d.channels)
                    self.generator = Stage2Generator(self.text_dim, m.c_dim, m.ngf, self.stage1_size, m.upscale,
                                                     m.res_blocks, d.channels)
                    net = Stage2Discriminator(m.c_dim, m.ndf, d.image_size, d.channels, condition_dim=condition_dim,
                                              joint_kernel=m.joint_kernel)
            except ValueError as exc:
                raise _size_error(config, exc) from None
        self.discriminator = MatchingAwareDiscriminator(net)
        if self.stage1 is not None:
            self.stage1.requires_grad_(False).eval()
        lr, betas = config.train.lr, tuple(m.betas)
        self.g_optimizer = adam(self.generator.parameters(), m.g_lr or lr, betas)
        self.d_optimizer = adam(self.discriminator.parameters(), m.d_lr or lr, betas)
        self.tricks = Tricks.from_config(m)

    # --- contract ---------------------------------------------------------------------------------
    def networks(self):
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self):
        return {"discriminator": self.d_optimizer, "generator": self.g_optimizer}

    def parameter_counts(self) -> dict[str, int]:
        counts = super().parameter_counts()
        if self.stage1 is not None:
            counts["stage1 (frozen)"] = sum(p.numel() for p in self.stage1.parameters())
        return counts

    def train(self, mode: bool = True):
        """As :meth:`torch.nn.Module.train`, but the frozen Stage-I generator always stays in eval mode."""
        super().train(mode)
        if self.stage1 is not None:
            self.stage1.eval()
        return self

    def set_lr_schedule(self, schedule: str, total_steps: int) -> None:
        """``model.lr_decay_epochs`` > 0: both learning rates × 0.5^⌊epoch / lr_decay_epochs⌋, stepped per
        training step (the authors halve at the start of every N-th epoch); else ``train.lr_schedule``."""
        every_epochs = self.config.model.lr_decay_epochs
        if not every_epochs:
            super().set_lr_schedule(schedule, total_steps)
            return
        steps_per_epoch = max(1, total_steps // self.config.train.epochs)
        every = every_epochs * steps_per_epoch

        def halving(step: int) -> float:
            return 0.5 ** (step // every)

        self._schedulers = {name: torch.optim.lr_scheduler.LambdaLR(opt, halving)
                            for name, opt in self.optimizers().items()}

    def weight_sources(self) -> list[WeightSource]:
        """Stage-II: the Stage-I run's ``generator.*`` weights become this model's ``stage1.*`` (checked first)."""
        m = self.config.model
        if m.stage == 1:
            return []
        self._check_stage1_run(Path(m.stage1_run))
        return [WeightSource(str(m.stage1_run), "stackgan", "generator.", "stage1.", "model.stage1_run")]

    def _check_stage1_run(self, run: Path) -> None:
        saved = run / "config.yaml"
        if not saved.is_file():
            raise GenlabError(f"model.stage1_run: {run} is not a genlab run (no config.yaml); train Stage-I first, "
                              "e.g. genlab train configs/stackgan-emoji.yaml")
        other = yaml.safe_load(saved.read_text()) or {}
        om, od = other.get("model", {}), other.get("data", {})
        m, d = self.config.model, self.config.data
        if om.get("family") != "stackgan" or om.get("stage") != 1:
            raise ConfigError(f"model.stage1_run: {run} holds a {om.get('family')!r} model (stage "
                              f"{om.get('stage')!r}); expected a StackGAN Stage-I run")
        expected = {"model.ngf": (om.get("ngf"), m.stage1_ngf, "model.stage1_ngf"),
                    "model.c_dim": (om.get("c_dim"), m.c_dim, "model.c_dim"),
                    "model.z_dim": (om.get("z_dim"), m.z_dim, "model.z_dim"),
                    "data.image_size": (od.get("image_size"), self.stage1_size,
                                        "data.image_size / model.upscale"),
                    "data.channels": (od.get("channels"), d.channels, "data.channels")}
        theirs_cub, ours_cub = od.get("name") == "cub", d.name == "cub"
        if ours_cub:
            expected["data.cub_embedding_dim"] = (od.get("cub_embedding_dim"), d.cub_embedding_dim,
                                                  "data.cub_embedding_dim")
        else:
            expected["data.text_encoder"] = (od.get("text_encoder"), d.text_encoder, "data.text_encoder")
            if d.text_encoder == "hashing":
                expected["data.text_hashing_dim"] = (od.get("text_hashing_dim"), d.text_hashing_dim,
                                                     "data.text_hashing_dim")
        for key, (theirs, ours, our_key) in expected.items():
            if theirs != ours or theirs_cub != ours_cub:
                raise ConfigError(f"model.stage1_run: {run} was trained with {key}={theirs!r}, but this Stage-II "
                                  f"config implies {our_key}={ours!r}; they must match")

    # --- generation -------------------------------------------------------------------------------
    def _draws(self, n: int, draw) -> dict[str, torch.Tensor]:
        """Noise of ``n`` generations in a fixed order: z, then (Stage-II) ε of G₀'s CA, then ε of G's CA."""
        m = self.config.model
        out = {"z": draw(n, m.z_dim)}
        if self.stage1 is not None:
            out["eps1"] = draw(n, m.c_dim)
        out["eps"] = draw(n, m.c_dim)
        return {k: v.to(self.device) for k, v in out.items()}

    def _forward(self, embedding: torch.Tensor, draws: dict[str, torch.Tensor], train: bool = False):
        """``(image, mu, logvar, stage1_image or None)``, images in [-1, 1]; ``train``: through DDP."""
        g = self.run("generator") if train else self.generator
        eps = draws["eps"] if self.config.model.conditioning_augmentation else None  # drawn either way: same stream
        if self.stage1 is None:
            image, mu, logvar = g(embedding, draws["z"], eps)
            return image, mu, logvar, None
        with torch.no_grad():
            low, _, _ = self.stage1(embedding, draws["z"], draws["eps1"])
        image, mu, logvar = g(low, embedding, eps)
        return image, mu, logvar, low

    def _conditions(self, mu: torch.Tensor, embedding: torch.Tensor, wrong_embedding: torch.Tensor):
        """D's condition for the matching pairs and for the mismatched pair (both without gradient)."""
        if self.config.model.d_condition == "embedding":
            return embedding, wrong_embedding
        with torch.no_grad():
            wrong_mu, _ = self.generator.ca.encode(wrong_embedding)
        return mu.detach(), wrong_mu.detach()

    @torch.no_grad()
    def generate(self, text_embedding: torch.Tensor, generator: torch.Generator | None = None, *,
                 z: torch.Tensor | None = None, eps: torch.Tensor | None = None, eps1: torch.Tensor | None = None,
                 stages: bool = False, chunk: int = 500):
        """Images in [0, 1] for caption embeddings ``(N, text_dim)``: ``(N, C, S, S)``, or with ``stages``
        the pair ``(stage1 (N, C, s, s) or None, final (N, C, S, S))``.

        Noise z ~ N(0, I) and the CA's ε are drawn from ``generator`` (the authors sample ε at test
        time too) unless given: ``z`` ``(N, z_dim)``; ``eps`` ``(N, c_dim)`` for the trained stage's CA;
        ``eps1`` ``(N, c_dim)`` for a Stage-II model's G₀ CA.
        """
        n = text_embedding.shape[0]

        def draw(rows, *shape):
            return torch.randn((rows, *shape), generator=generator)

        draws = self._draws(n, draw)
        if z is not None:
            draws["z"] = z.to(self.device).float()
        for key, given in (("eps", eps), ("eps1", eps1)):
            if given is not None and key in draws:
                draws[key] = given.to(self.device).float()
        embedding = text_embedding.to(self.device).float()
        finals, lows = [], []
        for start in range(0, max(n, 1), chunk):
            part = {k: v[start:start + chunk] for k, v in draws.items()}
            image, _, _, low = self._forward(embedding[start:start + chunk], part)
            finals.append(_to_unit(image))
            if low is not None:
                lows.append(_to_unit(low))
        final = torch.cat(finals)
        return (torch.cat(lows) if lows else None, final) if stages else final

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Caption embeddings ``(N, text_dim)`` by this run's text encoder (``data.text_encoder``)."""
        if self._encoder is None:
            self._encoder = text_encoder_for(self.config.data)
        return self._encoder.encode(list(texts))

    def _texts(self, n: int, text) -> list[str]:
        texts = [text] if isinstance(text, str) else list(text)
        if len(texts) == 1:
            return texts * n
        if len(texts) != n:
            raise GenlabError(f"text: give one caption or n = {n} captions; got {len(texts)}")
        return texts

    @torch.no_grad()
    def sample(self, n, cond=None, generator=None, text=None):
        """``n`` images ``(n, C, S, S)`` in [0, 1] for ``text`` (one caption for all, or ``n`` captions)."""
        if cond is not None:
            raise GenlabError("StackGAN is conditioned on text, not class labels: sample(n, text=[...])")
        if text is None:
            raise GenlabError("StackGAN generates images for captions: pass text (genlab sample RUN --text \"...\")")
        return self.generate(self.encode_text(self._texts(n, text)), generator)

    @torch.no_grad()
    def text_grid(self, n: int, text, generator: torch.Generator | None = None) -> PreviewGrid:
        """``genlab sample --text``: ``n`` samples for ``text``; a Stage-II model shows each Stage-I image
        (enlarged, nearest neighbour) left of its Stage-II refinement, four pairs per row."""
        low, final = self.generate(self.encode_text(self._texts(n, text)), generator, stages=True)
        if low is None:
            return PreviewGrid(final, max(1, math.ceil(math.sqrt(n))))
        low = torch.nn.functional.interpolate(low, size=final.shape[-2:], mode="nearest")
        return PreviewGrid(torch.stack([low, final], dim=1).flatten(0, 1), 2 * min(4, n))

    # --- training ---------------------------------------------------------------------------------
    def train_step(self, batch, step):
        """One D update on (real, matching), (real, mismatched), (fake, matching) pairs, then one G
        update; returns ``d_loss``, ``d_loss_real``, ``d_loss_fake``, ``d_loss_wrong``, ``g_loss``,
        ``g_adv``, ``kl`` (batch means; see the module docstring)."""
        m, noise = self.config.model, self.noise
        real, embedding = batch["image"], batch["text_embedding"].float()
        n = real.shape[0]
        draws = self._draws(n, noise.randn)
        with self.autocast():
            fake, mu, logvar, _ = self._forward(embedding, draws, train=True)
        condition, wrong_condition = self._conditions(mu, embedding, batch["wrong_text_embedding"].float())

        t_real = None if m.label_smoothing is None else real_targets(n, m.label_smoothing).to(real.device)
        x_real, x_fake = d_input(real, self.tricks, step, noise), d_input(fake.detach(), self.tricks, step, noise)
        with self.autocast():
            logits = self.run("discriminator")(x_real, condition, x_fake.to(x_real.dtype), wrong_condition)
        d = matching_aware_d_loss(*logits, loss=m.loss, real_targets=t_real)
        self.step_optimizer("discriminator", d["d_loss"])

        heads = self.discriminator.heads  # G's loss sums the heads (the authors' errD_fake += uncond_errD_fake)
        g_adv, _ = generator_loss(self.discriminator, fake, self.tricks, step, noise, extra=(condition,),
                                  autocast=self.autocast)
        g_adv = heads * g_adv
        kl = kl_term(mu, logvar, m.kl_reduction)
        g_loss = self._g_loss(g_adv, kl)
        self.step_optimizer("generator", g_loss)
        out = {k: float(v.detach()) for k, v in d.items()}
        return out | {"g_loss": float(g_loss.detach()), "g_adv": float(g_adv.detach()), "kl": float(kl.detach())}

    def _g_loss(self, g_adv: torch.Tensor, kl: torch.Tensor) -> torch.Tensor:
        """G's loss: ``g_adv + model.kl_coeff · kl``, or ``g_adv`` alone without conditioning augmentation."""
        m = self.config.model
        return g_adv + m.kl_coeff * kl if m.conditioning_augmentation else g_adv

    @torch.no_grad()
    def eval_step(self, batch, generator):
        """The training losses on test pairs (no tricks, no updates; D's BatchNorm on each batch's own
        statistics, as in training: :func:`batch_statistics`): a rising test ``d_loss_real`` with a
        falling train one means D memorises the training images."""
        m = self.config.model
        real, embedding = batch["image"], batch["text_embedding"].float()

        def draw(rows, *shape):
            return torch.randn((rows, *shape), generator=generator)

        fake, mu, logvar, _ = self._forward(embedding, self._draws(real.shape[0], draw))
        condition, wrong_condition = self._conditions(mu, embedding, batch["wrong_text_embedding"].float())
        with batch_statistics(self.discriminator) as disc:
            d = matching_aware_d_loss(*disc(real, condition, fake, wrong_condition), loss=m.loss)
            g_logits = disc(fake, condition)
        g_adv = self.discriminator.heads * GAN_LOSSES[m.loss][1](g_logits)
        kl = kl_term(mu, logvar, m.kl_reduction)
        out = {k: float(v) for k, v in d.items()}
        return out | {"g_loss": float(self._g_loss(g_adv, kl)), "g_adv": float(g_adv), "kl": float(kl)}

    @torch.no_grad()
    def preview(self, data, generator):
        """``samples``: for 8 fixed captions (the first caption of 8 images spread over ``data``), the real
        image then 7 samples per row; Stage-II adds ``stage1``, the Stage-I images of the same noise
        (enlarged), beside the same real images."""
        k = min(PREVIEW_CAPTIONS, len(data))
        index = torch.linspace(0, len(data) - 1, k).round().long()
        embedding = data.embeddings[index, 0].repeat_interleave(PREVIEW_SAMPLES, dim=0)
        low, final = self.generate(embedding, generator, stages=True)
        size = final.shape[-2:]
        real = data.data.images[index].float().div(255.0).to(final.device)
        if real.shape[-2:] != size:
            real = torch.nn.functional.interpolate(real, size=size, mode="bilinear", antialias=True).clamp(0, 1)

        def rows(images: torch.Tensor) -> torch.Tensor:
            grid = torch.cat([real[:, None], images.view(k, PREVIEW_SAMPLES, *images.shape[1:])], dim=1)
            return grid.flatten(0, 1).cpu()

        grids = {"samples": PreviewGrid(rows(final), PREVIEW_SAMPLES + 1)}
        if low is not None:
            grids["stage1"] = PreviewGrid(rows(torch.nn.functional.interpolate(low, size=size, mode="nearest")),
                                          PREVIEW_SAMPLES + 1)
        return grids


FAMILY = Family(
    name="stackgan", config_class=StackGANConfig, model_class=StackGAN, data_kind="captioned",
    loss_names=("d_loss", "d_loss_real", "d_loss_fake", "d_loss_wrong", "g_loss", "g_adv", "kl"), loss_units=None,
    metrics=evaluate_stackgan, figures=write_stackgan_figures, abilities=frozenset({"text"}),
    summary="StackGAN text to image, Stage-I and Stage-II (Zhang et al. 2017); seed report 000, question 3",
)
