"""StackGAN networks (Zhang et al., "StackGAN: Text to Photo-realistic Image Synthesis with Stacked
Generative Adversarial Networks", ICCV 2017, §3 and Supplementary), networks only.

Reference values are those of the paper and of the authors' StackGAN-Pytorch code
(``code/model.py``, ``code/miscc/config.py``, ``code/cfg/*.yml``, ``code/miscc/utils.py``):
z_dim 100 (``cfg.Z_DIM``), c_dim N_g = 128 (``cfg.GAN.CONDITION_DIM``), generator width
ngf 128 (``cfg.GAN.GF_DIM``; Stage-I starts from 4×4×(8·ngf) = 4×4×1024), discriminator width
ndf 64 (``cfg.GAN.DF_DIM``), text_dim 1024 (``cfg.TEXT.DIMENSION``, char-CNN-RNN embeddings),
2 residual blocks in Stage-II (``R_NUM: 2`` in ``cfg/coco_s2.yml``; the ``config.py`` default is 4).
(The COCO configs widen to GF_DIM 192 / DF_DIM 96.)

Shapes (N = batch, C = channels, images in [-1, 1], NCHW):

* :class:`Stage1Generator`: φ_t (N, text_dim), z (N, z_dim), ε (N, c_dim) → image (N, C, S, S),
  μ, log σ² (N, c_dim). Default parameters (text_dim 1024, S = 64): 10,301,248
  (text_dim 384: 10,137,408).
* :class:`Stage1Discriminator`: image (N, C, S, S), condition (N, c_dim) → logits (N,).
  Default (S = 64, 1×1 joint conv): 3,094,273; with ``joint_kernel=3`` (the PyTorch code):
  5,715,713.
* :class:`Stage2Generator`: Stage-I image (N, C, s, s), φ_t, ε → image (N, C, upscale·s, upscale·s),
  μ, log σ². Default (text_dim 1024, s = 64, 256×256 output, 2 residual blocks): 16,848,800
  (4 residual blocks: 26,290,080).
* :class:`Stage2Discriminator`: image (N, C, S, S), condition (N, c_dim) → logits (N,).
  Default (S = 256, 1×1 joint conv, unconditional head): 68,647,682; ``joint_kernel=3``:
  71,269,122.

(Counts are trainable parameters; BatchNorm running statistics are buffers and not counted.)

Deviations from StackGAN-Pytorch (each documented where it occurs):

* Conditioning Augmentation follows the paper: μ and log σ² are linear in φ_t; the authors' code
  puts a ReLU between the FC layer and the split (see :mod:`genlab.nn.conditioning`).
* The discriminators return **logits** (use ``BCEWithLogitsLoss``); the authors end every logit
  head with ``nn.Sigmoid`` and use ``BCELoss``.
* The discriminator's joint image-text layer is a **1×1** convolution by default, as in the paper
  (§4: "fed to a 1×1 convolutional layer") and in the authors' original TensorFlow code
  (``stageI/model.py`` ``discriminator``: ``custom_conv2d(df_dim*8, k_h=1, k_w=1)``);
  StackGAN-Pytorch (``D_GET_LOGITS``) and StackGAN-v2 use a 3×3 convolution. ``joint_kernel=3``
  reproduces the PyTorch code.
* Initialisation: the authors' ``weights_init`` (``miscc/utils.py``: conv and Linear weights
  N(0, 0.02), Linear biases 0, BatchNorm weight N(1, 0.02) and bias 0) via
  :func:`genlab.nn.init.init_normal_` (std 0.02), which also zeroes the one conv bias (the 4×4
  logit convolution's); the authors leave that bias at PyTorch's default uniform initialisation.
* Generators do not detach or freeze anything: the caller passes a detached Stage-I image to
  Stage-II (the authors detach it inside ``STAGE2_G`` and freeze Stage-I G) and a detached μ to
  the discriminators (the authors' ``compute_discriminator_loss`` does ``conditions.detach()``).
* Sizes other than the authors' 64 and 256 are allowed (any 4·2^k), see each class.
"""

from __future__ import annotations

import torch
from torch import nn

from genlab.nn.activations import LeakyReLU
from genlab.nn.conditioning import ConditioningAugmentation
from genlab.nn.init import init_normal_
from genlab.nn.layers import NearestResizeConv, NearestUpsample2x

__all__ = ["MatchingAwareDiscriminator", "Stage1Discriminator", "Stage1Generator", "Stage2Discriminator", "Stage2Generator"]

#: LeakyReLU slope of the discriminators (paper Supplementary; ``nn.LeakyReLU(0.2)`` in model.py)
LEAKY_SLOPE = 0.2


def _doublings(size: int, base: int = 4) -> int | None:
    """k if ``size == base · 2^k`` (k ≥ 0), else None."""
    if size < base or size % base:
        return None
    ratio = size // base
    if ratio & (ratio - 1):
        return None
    return ratio.bit_length() - 1


def _size_error(cls: str, name: str, value, allowed: str) -> ValueError:
    return ValueError(f"{cls}: {name} must be {allowed}; got {value!r}")


def _conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    """3×3 convolution, stride 1, padding 1, no bias (``conv3x3`` in model.py)."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1, bias=False)


def _up_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """×2 nearest-neighbour upsampling → 3×3 conv (no bias) → BN → ReLU (paper Suppl.; ``upBlock``)."""
    return NearestResizeConv(NearestUpsample2x(), _conv3x3(in_ch, out_ch), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


def _down_block(in_ch: int, out_ch: int, batch_norm: bool = True) -> nn.Sequential:
    """4×4 conv stride 2 (no bias) → [BN] → LeakyReLU(0.2): halves the spatial size."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel_size=4, stride=2, padding=1, bias=False)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(LeakyReLU(LEAKY_SLOPE, inplace=True))
    return nn.Sequential(*layers)


class _ResBlock(nn.Module):
    """Residual block of Stage-II G: x → ReLU(x + BN(conv3×3(ReLU(BN(conv3×3(x)))))) (``ResBlock``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(_conv3x3(channels, channels), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                                   _conv3x3(channels, channels), nn.BatchNorm2d(channels))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.block(x))


def _check_image(cls: str, image: torch.Tensor, channels: int, size: int, name: str = "image") -> None:
    if image.dim() != 4 or image.shape[1] != channels or image.shape[2] != size or image.shape[3] != size:
        raise ValueError(f"{cls}: {name} must have shape (N, {channels}, {size}, {size}); got {tuple(image.shape)}")


def _check_vector(cls: str, x: torch.Tensor, dim: int, batch: int, name: str) -> None:
    if x.dim() != 2 or x.shape[1] != dim or x.shape[0] != batch:
        raise ValueError(f"{cls}: {name} must have shape ({batch}, {dim}); got {tuple(x.shape)}")


# --------------------------------------------------------------------------------------------- G


class Stage1Generator(nn.Module):
    """Stage-I generator G₀: text embedding + noise → low-resolution image (paper §3.2, Suppl.).

    Args:
        text_dim: size of φ_t (1024 char-CNN-RNN, ``cfg.TEXT.DIMENSION``; 384 MiniLM).
        z_dim: noise size N_z (paper §4 / ``cfg.Z_DIM``: 100).
        c_dim: conditioning code size N_g (``cfg.GAN.CONDITION_DIM``: 128).
        ngf: width (``cfg.GAN.GF_DIM``: 128); the 4×4 map has ``8·ngf`` channels.
        image_size: output side S = 4·2^k, k ≥ 1 (paper: 64; 32 for CPU configs), with
            ``8·ngf`` divisible by 2^k.
        out_channels: C (3 for RGB).

    Layers: own :class:`ConditioningAugmentation` (text_dim → μ, log σ² of size c_dim);
    [ĉ, z] (N, c_dim + z_dim) → Linear (no bias) → BatchNorm1d → ReLU → reshape (N, 8·ngf, 4, 4);
    k = log2(S/4) up-blocks (×2 nearest, 3×3 conv no bias, BN, ReLU) halving the channels
    (64×64: 1024 → 512 → 256 → 128 → 64); 3×3 conv (no bias) to C; tanh.
    The paper/TF code concatenate [c, z], the PyTorch code [z, c]; this class uses [c, z].
    """

    def __init__(self, text_dim: int, z_dim: int = 100, c_dim: int = 128, ngf: int = 128, image_size: int = 64, out_channels: int = 3):
        super().__init__()
        name = type(self).__name__
        k = _doublings(image_size)
        if k is None or k < 1:
            raise _size_error(name, "image_size", image_size, "4·2^k with k ≥ 1 (8, 16, 32, 64, 128, 256, …)")
        top = 8 * ngf
        if ngf < 1 or top % (2**k):
            raise _size_error(name, "ngf", ngf, f"≥ 1 with 8·ngf divisible by {2**k} for image_size {image_size}")
        if z_dim < 1 or out_channels < 1:
            raise ValueError(f"{name}: z_dim and out_channels must be ≥ 1; got z_dim={z_dim}, out_channels={out_channels}")
        self.text_dim, self.z_dim, self.c_dim, self.ngf = text_dim, z_dim, c_dim, ngf
        self.image_size, self.out_channels = image_size, out_channels
        self.ca = ConditioningAugmentation(text_dim, c_dim)
        self.fc = nn.Sequential(nn.Linear(c_dim + z_dim, top * 4 * 4, bias=False), nn.BatchNorm1d(top * 4 * 4), nn.ReLU(inplace=True))
        channels = [top // 2**i for i in range(k + 1)]
        self.upsample = nn.Sequential(*(_up_block(a, b) for a, b in zip(channels[:-1], channels[1:])))
        self.to_image = nn.Sequential(_conv3x3(channels[-1], out_channels), nn.Tanh())
        init_normal_(self, std=0.02)  # the authors' weights_init

    def forward(self, text_embedding: torch.Tensor, z: torch.Tensor,
                eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(image, mu, logvar)``.

        Args:
            text_embedding: φ_t, (N, text_dim).
            z: noise, (N, z_dim), N(0, I) in the paper (drawn by the caller).
            eps: CA noise ε, (N, c_dim), or ``None`` for ĉ = μ.

        Returns:
            image (N, C, S, S) in [-1, 1]; mu, logvar (N, c_dim) of the CA.
        """
        c, mu, logvar = self.ca(text_embedding, eps)
        _check_vector(type(self).__name__, z, self.z_dim, c.shape[0], "z")
        h = self.fc(torch.cat([c, z], dim=1)).view(-1, 8 * self.ngf, 4, 4)
        return self.to_image(self.upsample(h)), mu, logvar


class Stage2Generator(nn.Module):
    """Stage-II generator G: Stage-I image + text embedding → high-resolution image (paper §3.3, Suppl.).

    There is no noise input z (paper §3.3: the randomness is in the Stage-I image and in ε).

    Args:
        text_dim: size of φ_t. Stage-II has its own CA (paper §3.3; own ``ca_net`` in ``STAGE2_G``).
        c_dim: conditioning code size (128).
        ngf: width (``cfg.GAN.GF_DIM``: 128). Encoder widths ngf, 2·ngf, 4·ngf.
        stage1_size: side s of the Stage-I image, 4·2^k with k ≥ 1 (paper: 64).
        upscale: output side / s, 2 or 4 (paper: 4, 64 → 256; CPU configs 2 or 4 to reach 128).
        res_blocks: number of residual blocks (``R_NUM: 2`` in ``cfg/coco_s2.yml``; the
            ``config.py`` default is 4).
        out_channels: C of both the Stage-I input image and the output image.

    Layers: encoder 3×3 conv (C → ngf, no bias) → ReLU → two [4×4 stride-2 conv (no bias) → BN → ReLU]
    (ngf → 2·ngf → 4·ngf): the map is s/4 × s/4 (16×16 for s = 64, as in the authors' code);
    ĉ (N, c_dim) replicated to s/4 × s/4 and concatenated after the image features;
    joint 3×3 conv (4·ngf + c_dim → 4·ngf) → BN → ReLU; ``res_blocks`` residual blocks at 4·ngf;
    2 + log2(upscale) up-blocks halving the channels (upscale 4: 4·ngf → 2·ngf → ngf → ngf/2 → ngf/4,
    the authors' 16 → 256 path; upscale 2: … → ngf/2); 3×3 conv (no bias) to C; tanh.

    Stage-I images smaller than 64: the encoder always downsamples by 4 (two stride-2 convs), so
    the joint map is s/4 (8×8 for s = 32, not 16×16) and the network has the same layers and
    parameter count for every s; only ``upscale`` changes the depth.
    """

    UPSCALES = (2, 4)

    def __init__(self, text_dim: int, c_dim: int = 128, ngf: int = 128, stage1_size: int = 64, upscale: int = 4,
                 res_blocks: int = 2, out_channels: int = 3):
        super().__init__()
        name = type(self).__name__
        k = _doublings(stage1_size)
        if k is None or k < 1:
            raise _size_error(name, "stage1_size", stage1_size, "4·2^k with k ≥ 1 (8, 16, 32, 64, 128, …)")
        if upscale not in self.UPSCALES:
            raise _size_error(name, "upscale", upscale, f"one of {self.UPSCALES}")
        n_up = 2 + (upscale.bit_length() - 1)
        if ngf < 1 or (4 * ngf) % (2**n_up):
            raise _size_error(name, "ngf", ngf, f"≥ 1 with 4·ngf divisible by {2**n_up} for upscale {upscale}")
        if res_blocks < 0:
            raise _size_error(name, "res_blocks", res_blocks, "≥ 0")
        self.text_dim, self.c_dim, self.ngf = text_dim, c_dim, ngf
        self.stage1_size, self.upscale, self.out_channels = stage1_size, upscale, out_channels
        self.image_size = stage1_size * upscale
        self.joint_size = stage1_size // 4
        self.ca = ConditioningAugmentation(text_dim, c_dim)
        self.encoder = nn.Sequential(
            _conv3x3(out_channels, ngf), nn.ReLU(inplace=True),
            nn.Conv2d(ngf, 2 * ngf, kernel_size=4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * ngf), nn.ReLU(inplace=True),
            nn.Conv2d(2 * ngf, 4 * ngf, kernel_size=4, stride=2, padding=1, bias=False), nn.BatchNorm2d(4 * ngf), nn.ReLU(inplace=True),
        )
        self.joint = nn.Sequential(_conv3x3(4 * ngf + c_dim, 4 * ngf), nn.BatchNorm2d(4 * ngf), nn.ReLU(inplace=True))
        self.residual = nn.Sequential(*(_ResBlock(4 * ngf) for _ in range(res_blocks)))
        channels = [4 * ngf // 2**i for i in range(n_up + 1)]
        self.upsample = nn.Sequential(*(_up_block(a, b) for a, b in zip(channels[:-1], channels[1:])))
        self.to_image = nn.Sequential(_conv3x3(channels[-1], out_channels), nn.Tanh())
        init_normal_(self, std=0.02)  # the authors' weights_init

    def forward(self, stage1_image: torch.Tensor, text_embedding: torch.Tensor,
                eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(image, mu, logvar)``.

        Args:
            stage1_image: (N, C, s, s) in [-1, 1]; detach it if Stage-I is not to be trained
                (the authors detach it and freeze Stage-I G).
            text_embedding: φ_t, (N, text_dim).
            eps: CA noise ε, (N, c_dim), or ``None`` for ĉ = μ.

        Returns:
            image (N, C, upscale·s, upscale·s) in [-1, 1]; mu, logvar (N, c_dim) of this stage's CA.
        """
        c, mu, logvar = self.ca(text_embedding, eps)
        _check_image(type(self).__name__, stage1_image, self.out_channels, self.stage1_size, "stage1_image")
        if stage1_image.shape[0] != c.shape[0]:
            raise ValueError(f"{type(self).__name__}: stage1_image has {stage1_image.shape[0]} images but text_embedding {c.shape[0]} rows")
        h = self.encoder(stage1_image)
        c_map = c[:, :, None, None].expand(-1, -1, self.joint_size, self.joint_size)
        h = self.residual(self.joint(torch.cat([h, c_map], dim=1)))
        return self.to_image(self.upsample(h)), mu, logvar


# --------------------------------------------------------------------------------------------- D


class _StackGANDiscriminator(nn.Module):
    """Shared logit heads of the StackGAN discriminators (``D_GET_LOGITS`` in model.py).

    The image encoder (built by the subclass) ends at (N, 8·ndf, 4, 4) (M_d = 4, paper §4).
    Conditional head: condition (N, c_dim) [→ Linear + LeakyReLU(0.2) if ``condition_dim`` is
    given] replicated to 4×4 → concatenated after the image features → joint conv
    (8·ndf + c_dim → 8·ndf, ``joint_kernel`` × ``joint_kernel``, no bias) → BN → LeakyReLU(0.2) →
    4×4 conv stride 4 (with bias) → one logit per image. Unconditional head (optional): 4×4 conv
    stride 4 on the image features → one logit.

    The condition: in StackGAN-Pytorch D receives Stage-I/II G's CA mean μ (N, 128), detached by the
    caller, and uses it as is (no layer compresses it; the CA's FC layer already maps φ_t to 128).
    The paper (§4) and the TensorFlow code (``context_embedding``) instead feed the raw text
    embedding φ_t and compress it to N_d = 128 with an FC layer + LeakyReLU(0.2) inside D. Default
    ``condition_dim=None`` follows the PyTorch code (condition has c_dim entries, no layer);
    ``condition_dim=text_dim`` builds the paper's compression layer.
    """

    def _build_heads(self, ndf: int, c_dim: int, condition_dim: int | None, joint_kernel: int, unconditional_head: bool) -> None:
        name = type(self).__name__
        if joint_kernel not in (1, 3):
            raise _size_error(name, "joint_kernel", joint_kernel, "1 (paper, TF code) or 3 (StackGAN-Pytorch)")
        if condition_dim is not None and condition_dim < 1:
            raise _size_error(name, "condition_dim", condition_dim, "None or ≥ 1")
        self.c_dim, self.ndf = c_dim, ndf
        self.condition_dim = c_dim if condition_dim is None else condition_dim
        self.compress = (nn.Identity() if condition_dim is None
                         else nn.Sequential(nn.Linear(condition_dim, c_dim), LeakyReLU(LEAKY_SLOPE, inplace=True)))
        self.joint = nn.Sequential(
            nn.Conv2d(8 * ndf + c_dim, 8 * ndf, kernel_size=joint_kernel, padding=joint_kernel // 2, bias=False),
            nn.BatchNorm2d(8 * ndf), LeakyReLU(LEAKY_SLOPE, inplace=True),
            nn.Conv2d(8 * ndf, 1, kernel_size=4, stride=4),
        )
        self.uncond = nn.Conv2d(8 * ndf, 1, kernel_size=4, stride=4) if unconditional_head else None

    @property
    def has_unconditional_head(self) -> bool:
        return self.uncond is not None

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) → image features (N, 8·ndf, 4, 4); compute once, reuse for real/wrong pairs."""
        _check_image(type(self).__name__, image, self.in_channels, self.image_size)
        return self.encode_image(image)

    def conditional_logits(self, features: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Features (N, 8·ndf, 4, 4) + condition (N, condition_dim) → logits (N,)."""
        _check_vector(type(self).__name__, condition, self.condition_dim, features.shape[0], "condition")
        c = self.compress(condition)
        c_map = c[:, :, None, None].expand(-1, -1, features.shape[2], features.shape[3])
        return self.joint(torch.cat([features, c_map], dim=1)).view(-1)

    def unconditional_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Features (N, 8·ndf, 4, 4) → logits (N,); only with ``unconditional_head=True``."""
        if self.uncond is None:
            raise RuntimeError(f"{type(self).__name__} was built without an unconditional head (unconditional_head=False)")
        return self.uncond(features).view(-1)

    def forward(self, image: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Conditional logit D(I, c): image (N, C, S, S), condition (N, condition_dim) → (N,) logits."""
        return self.conditional_logits(self.encode(image), condition)


class Stage1Discriminator(_StackGANDiscriminator):
    """Stage-I discriminator D₀ (paper §3.2/§4, Suppl.; ``STAGE1_D``).

    Args:
        c_dim: size of the condition N_d that is replicated over the 4×4 map (128).
        ndf: width (``cfg.GAN.DF_DIM``: 64).
        image_size: S = 4·2^k, k ≥ 1 (paper: 64), with 8·ndf divisible by 2^(k-1).
        in_channels: C.
        condition_dim: ``None`` (condition is μ with c_dim entries, StackGAN-Pytorch) or the size
            of a raw embedding to compress with FC + LeakyReLU (paper §4, TF code).
        joint_kernel: 1 (paper, TF code; default) or 3 (StackGAN-Pytorch).
        unconditional_head: add the unconditional logit head; the authors' Stage-I D has none
            (``get_uncond_logits = None``), so default False.

    Image encoder: k = log2(S/4) 4×4 stride-2 convs (no bias) with LeakyReLU(0.2), BN on all but the
    first, ending at 8·ndf channels; the widths double towards it (64×64: C → 64 → 128 → 256 → 512,
    as in the authors' code; 32×32: C → 128 → 256 → 512).
    """

    def __init__(self, c_dim: int = 128, ndf: int = 64, image_size: int = 64, in_channels: int = 3, *,
                 condition_dim: int | None = None, joint_kernel: int = 1, unconditional_head: bool = False):
        super().__init__()
        name = type(self).__name__
        k = _doublings(image_size)
        if k is None or k < 1:
            raise _size_error(name, "image_size", image_size, "4·2^k with k ≥ 1 (8, 16, 32, 64, …)")
        if ndf < 1 or (8 * ndf) % (2 ** (k - 1)):
            raise _size_error(name, "ndf", ndf, f"≥ 1 with 8·ndf divisible by {2 ** (k - 1)} for image_size {image_size}")
        self.image_size, self.in_channels = image_size, in_channels
        channels = [in_channels] + [8 * ndf // 2 ** (k - 1 - i) for i in range(k)]
        self.encode_image = nn.Sequential(*(_down_block(a, b, batch_norm=i > 0) for i, (a, b) in enumerate(zip(channels[:-1], channels[1:]))))
        self._build_heads(ndf, c_dim, condition_dim, joint_kernel, unconditional_head)
        init_normal_(self, std=0.02)  # the authors' weights_init


class Stage2Discriminator(_StackGANDiscriminator):
    """Stage-II discriminator D (paper §3.3, Suppl.; ``STAGE2_D``).

    Args:
        c_dim, ndf, in_channels, condition_dim, joint_kernel: as :class:`Stage1Discriminator`.
        image_size: S = 4·2^k with k ≥ 4 (64, 128, 256, …; paper: 256).
        unconditional_head: the authors' Stage-II D has both heads (``get_uncond_logits`` =
            ``D_GET_LOGITS(bcondition=False)``, averaged into its loss), so default True.

    Image encoder: k = log2(S/4) 4×4 stride-2 convs (no bias, LeakyReLU(0.2), BN on all but the
    first) with widths ndf·2^i (256: 64 → 128 → … → 2048 at 4×4), then 3×3 convs (no bias) + BN +
    LeakyReLU halving the width back to 8·ndf (256: 2048 → 1024 → 512), exactly the authors' layers.
    At 128 that is one 3×3 conv (1024 → 512), as StackGAN-v2's ``D_NET128``; at 64 none.
    """

    def __init__(self, c_dim: int = 128, ndf: int = 64, image_size: int = 256, in_channels: int = 3, *,
                 condition_dim: int | None = None, joint_kernel: int = 1, unconditional_head: bool = True):
        super().__init__()
        name = type(self).__name__
        k = _doublings(image_size)
        if k is None or k < 4:
            raise _size_error(name, "image_size", image_size, "4·2^k with k ≥ 4 (64, 128, 256, 512, …)")
        if ndf < 1:
            raise _size_error(name, "ndf", ndf, "≥ 1")
        self.image_size, self.in_channels = image_size, in_channels
        down = [in_channels] + [ndf * 2**i for i in range(k)]
        layers: list[nn.Module] = [_down_block(a, b, batch_norm=i > 0) for i, (a, b) in enumerate(zip(down[:-1], down[1:]))]
        width = down[-1]
        while width > 8 * ndf:
            layers += [_conv3x3(width, width // 2), nn.BatchNorm2d(width // 2), LeakyReLU(LEAKY_SLOPE, inplace=True)]
            width //= 2
        self.encode_image = nn.Sequential(*layers)
        self._build_heads(ndf, c_dim, condition_dim, joint_kernel, unconditional_head)
        init_normal_(self, std=0.02)  # the authors' weights_init


class MatchingAwareDiscriminator(nn.Module):
    """One forward pass for all of a D step's pairs, so that a DDP wrapper sees one call per step.

    Wraps a :class:`Stage1Discriminator` or :class:`Stage2Discriminator` (``net``; its state-dict
    keys gain the prefix ``net.``).

    * ``forward(image, condition)`` → logits ``(N, H)``: column 0 the conditional head D(I, c),
      column 1 the unconditional head D(I) when the network has one (H = 1 or 2); the generator's step.
    * ``forward(real, condition, fake, wrong_condition)`` → ``(real, wrong, fake, uncond_real,
      uncond_fake)``, logits ``(N,)`` each (the last two None without an unconditional head): the
      discriminator's step. Real and fake images are encoded in separate batches, and the joint
      head runs once per pair (real + matching, real + mismatched, fake + matching), each with its
      own BatchNorm statistics, as the authors' ``compute_discriminator_loss``; the real images'
      features serve both real pairs.
    """

    def __init__(self, net: _StackGANDiscriminator):
        super().__init__()
        self.net = net

    @property
    def heads(self) -> int:
        """Logit heads: 1 (conditional) or 2 (conditional and unconditional)."""
        return 2 if self.net.has_unconditional_head else 1

    def forward(self, image: torch.Tensor, condition: torch.Tensor, fake: torch.Tensor | None = None,
                wrong_condition: torch.Tensor | None = None):
        net = self.net
        if fake is None:
            features = net.encode(image)
            logits = [net.conditional_logits(features, condition)]
            if net.has_unconditional_head:
                logits.append(net.unconditional_logits(features))
            return torch.stack(logits, dim=1)
        if wrong_condition is None:
            raise ValueError("MatchingAwareDiscriminator: the D step needs wrong_condition (mismatched text)")
        real_features, fake_features = net.encode(image), net.encode(fake)
        real = net.conditional_logits(real_features, condition)
        wrong = net.conditional_logits(real_features, wrong_condition)
        fake_logits = net.conditional_logits(fake_features, condition)
        if not net.has_unconditional_head:
            return real, wrong, fake_logits, None, None
        return real, wrong, fake_logits, net.unconditional_logits(real_features), net.unconditional_logits(fake_features)
