"""Layer helpers shared by the image-to-image networks (U-Net, ResNet generator, PatchGAN):
norms, Keras-"same" padding, convolutions, up-sampling by transposed conv or resize-then-conv, and
input-size checks."""

from __future__ import annotations

import contextlib
import math
import weakref
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from genlab.nn.matmul_conv import conv_output_size, forward_with_matmul_weight_grad, matmul_conv2d, uses_matmul_weight_grad, weight_parameter
from genlab.nn.winograd import winograd_conv3x3, winograd_weight

NormKind = Literal["instance", "batch", "none"]
UpsampleKind = Literal["deconv", "resize"]
PaddingKind = Literal["symmetric", "keras"]

_NORMS = ("instance", "batch", "none")
_UPSAMPLES = ("deconv", "resize")
_PADDINGS = ("symmetric", "keras")


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming ``name``, the bad ``value`` and the ``allowed`` ones."""
    if value not in allowed:
        raise ValueError(f"{name}: got {value!r}; allowed: {', '.join(map(repr, allowed))}")


class InstanceNorm(nn.GroupNorm):
    """Instance norm of ``(N, C, H, W)`` maps as ``GroupNorm(C, C)`` (one channel per group, Wu & He 2018 §3.1).

    Per sample and channel: (x − mean_HW) / sqrt(var_HW + eps), then γ·… + β if ``affine``. No running
    statistics: train and eval behave the same (like ``nn.InstanceNorm2d(track_running_stats=False)``).
    Unlike PyTorch's norms it accepts a 1×1 map in training, where x − mean = 0 and it returns β (0
    without affine) — what TF-Addons' ``InstanceNormalization`` (itself a GroupNormalization with
    groups = channels) computes, and what the seed U-Net's innermost layer relies on.

    Statistics are computed in fp32 and the result returned in the input's dtype: under bf16
    autocast PyTorch's CPU group norm runs in bf16, about 4x slower than fp32 on channels-last maps
    (and with 8-bit mantissa sums); measured in CycleGAN's step, where it took 70 % of the time.

    In eager runs a channels-last map is normalised in the contiguous layout and copied back
    (:attr:`contiguous_statistics`): PyTorch's channels-last group-norm kernels, the backward above
    all, are slower than the contiguous ones with both layout copies. Forward + backward of fp32
    statistics, one thread, EPYC, inputs not leaves: (8, 128, 16, 16) 4.1 ms against 1.0 ms,
    (8, 64, 32, 32) 3.9 against 3.6 ms, (8, 32, 64, 64) 9.4 against 5.7 ms (the channels-last backward
    alone: 8.5 ms, the contiguous one 0.4 ms); the same with the AVX2 caps and from bf16 inputs.
    Compiled graphs normalise with inductor's own kernels, faster still in the map's own layout.
    """

    #: eager runs normalise channels-last maps in the contiguous layout (``False``: in their own)
    contiguous_statistics = True

    def __init__(self, channels: int, eps: float = 1e-5, affine: bool = False):
        super().__init__(channels, channels, eps=eps, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if x.shape[-1] * x.shape[-2] == 1:
            y = x - x  # exact zeros that keep dtype, device and the graph
            return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)
        if (self.contiguous_statistics and not torch.compiler.is_compiling()
                and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()):
            y = F.group_norm(x.to(torch.float32, memory_format=torch.contiguous_format), self.num_groups,
                             self.weight, self.bias, self.eps)
            return y.to(x.dtype, memory_format=torch.channels_last)
        return F.group_norm(x.float(), self.num_groups, self.weight, self.bias, self.eps).to(x.dtype)


class NearestUpsample2x(nn.Upsample):
    """×2 nearest-neighbour up-sampling ``(N, C, h, w)`` → ``(N, C, 2h, 2w)``, the same values as
    ``nn.Upsample(scale_factor=2, mode="nearest")`` (a subclass without parameters: checkpoints match).

    Under ``torch.compile`` it copies each pixel into a 2×2 block with ``expand`` + ``reshape`` (in
    the input's memory format), whose backward is a sum over the block that inductor fuses and
    vectorises. Inductor lowers ``upsample_nearest2d``'s backward to a scatter-add (``index_put``)
    instead: measured on CycleGAN's 64-px U-Net (one thread, bf16, EPYC), that one kernel took 20 ms
    of the generator's 104 ms forward + backward, and the compiled generator ran at 0.8× eager.
    Eager keeps PyTorch's own kernel, which is faster there than the expand + reshape copy.
    """

    def __init__(self) -> None:
        super().__init__(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.compiler.is_compiling():
            return super().forward(x)
        n, c, h, w = x.shape
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            nhwc = x.permute(0, 2, 3, 1)[:, :, None, :, None, :].expand(n, h, 2, w, 2, c)
            return nhwc.reshape(n, 2 * h, 2 * w, c).permute(0, 3, 1, 2)
        return x[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)


class NearestResizeConv(nn.Sequential):
    """``nn.Sequential(NearestUpsample2x(), conv, *rest)`` with ``conv`` a 3×3, stride-1, padding-1
    convolution (zero or reflect padding): the resize-convolution up-block, (N, I, h, w) → (N, O, 2h, 2w),
    then ``rest`` (a norm, an activation). The same modules and ``state_dict`` keys as the plain
    ``nn.Sequential``, so checkpoints match.

    Under ``torch.compile`` the first two run as :func:`resize_conv2d`, which convolves the small
    map instead of the ×2 one: a 3×3 convolution of a nearest-up-sampled map sees each input pixel
    through 2×2 summed taps per output phase, 4/9 of the multiply-adds. Eager keeps the two layers
    (and the plain fp32 loop of ``genlab bench``, which runs eager, stays the textbook one).
    Only inputs of at least ``min_pixels`` (batch × height × width): on the U-Net's 1×1 to 4×4 maps
    at batch 4 or 8, four tiny convolutions and their joins cost more than they save (CycleGAN's
    64-px U-Net step, compiled, one thread, EPYC-BF16: 0.311 s plain, 0.388 s with every block in
    this form, 0.288 s from 8×8 on), while StackGAN's 4×4 maps at batch 64 are large enough (its
    step's in-process A/B: 1.14× with its 4×4 block in the form, 1.10× without).
    """

    min_pixels = 256  #: smallest batch × height × width of the input for the compile-time form

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        upsample, conv, *rest = self
        if not (torch.compiler.is_compiling() and isinstance(upsample, NearestUpsample2x) and _is_resize_conv(conv)
                and x.shape[0] * x.shape[-2] * x.shape[-1] >= self.min_pixels):
            return super().forward(x)
        y = resize_conv2d(x, conv.weight, conv.bias, conv.padding_mode)
        for module in rest:
            y = module(y)
        return y


def _is_resize_conv(conv: nn.Module) -> bool:
    return (isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode in ("zeros", "reflect"))


def resize_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  padding_mode: str = "zeros") -> torch.Tensor:
    """A 3×3 convolution (stride 1, padding 1) of the ×2 nearest-up-sampled ``x``, computed on ``x`` itself.

    ``x`` (N, I, h, w), ``weight`` (O, I, 3, 3) → (N, O, 2h, 2w), the values of
    ``F.conv2d(F.pad(up(x), (1,) * 4, mode), weight, bias)``. Along each axis, output pixel 2i + a
    (phase a) sees up-sampled pixels 2i + a − 1 … 2i + a + 1, which are input pixels i − 1, i, i
    (a = 0) or i, i, i + 1 (a = 1): two taps with weights (w₀, w₁ + w₂) or (w₀ + w₁, w₂). So each of
    the four output phases is a 2×2 convolution of ``x`` padded by one pixel, 16 multiply-adds per
    output pixel and channel pair instead of 36. Reflect padding of the up-sampled map is replicate
    padding of ``x``. The phases are joined with :func:`depth_to_space`.

    With fewer than 8 output channels the four phases run as one 3×3 convolution to 4·O channels
    (zeros at the unused taps), since oneDNN blocks output channels by 16 and 12 fill a block better
    than 3. Measured forward + backward, compiled, bf16, channels-last, one thread, EPYC-BF16, against
    the eager up-sampling and convolution: 128 → 64 channels at 16 → 32 px, batch 8: 14.8 against
    23.0 ms; 64 → 32 at 32 → 64 px, batch 64: 167 against 341 ms; 128 → 3 at 32 → 64 px, batch 8:
    9.3 against 27.3 ms.
    """
    h, w = x.shape[-2:]
    padded = replicate_pad1(x) if padding_mode == "reflect" else F.pad(x, (1, 1, 1, 1))
    taps = _resize_taps(_resize_taps(weight).movedim(2, -1))  # (O, I, a_x, t_x, a_y, t_y)
    kernels = [taps[:, :, ax, :, ay, :].transpose(-1, -2) for ay, ax in _PHASES]  # (O, I, t_y, t_x)
    if weight.shape[0] < 8:
        kernel = torch.cat([F.pad(k, (ax, 1 - ax, ay, 1 - ay)) for k, (ay, ax) in zip(kernels, _PHASES)])
        y = F.conv2d(padded, kernel, None if bias is None else bias.repeat(4))
    else:
        y = torch.cat([F.conv2d(padded[..., ay:ay + h + 1, ax:ax + w + 1], k, bias)
                       for k, (ay, ax) in zip(kernels, _PHASES)], dim=1)
    return depth_to_space(y)


_PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))  # (a_y, a_x) in depth_to_space's channel order


def _resize_taps(w: torch.Tensor) -> torch.Tensor:
    """A 3-tap kernel ``w`` (..., 3) seen from the input of a ×2 nearest up-sampling: (..., 2 phases, 2 taps),
    phase 0 at offsets (−1, 0) with (w₀, w₁ + w₂), phase 1 at offsets (0, +1) with (w₀ + w₁, w₂)."""
    w0, w1, w2 = w.unbind(-1)
    return torch.stack([torch.stack([w0, w1 + w2], -1), torch.stack([w0 + w1, w2], -1)], -2)


def replicate_pad1(x: torch.Tensor) -> torch.Tensor:
    """``F.pad(x, (1, 1, 1, 1), mode="replicate")`` from slices and ``torch.cat`` (inductor's lowering of
    ``replication_pad2d``'s backward fails on channels-last maps in torch 2.13)."""
    x = torch.cat([x[..., :1], x, x[..., -1:]], dim=-1)
    return torch.cat([x[..., :1, :], x, x[..., -1:, :]], dim=-2)


class PaddedConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same arguments, parameters and checkpoints) whose ``padding_mode="reflect"``
    has a compile-time form: under ``torch.compile`` the reflected borders are flipped slices of the
    input joined with ``torch.cat`` (:func:`reflect_pad2d`), whose backward is slicing and adding,
    which inductor fuses and vectorises. Inductor's own lowering of ``reflection_pad2d``'s backward
    was the largest of its kernels in CycleGAN's compiled ResNet-6 step; measured on the ResNet-6
    generator (ngf 32, 64 px, batch 4, bf16, channels-last, one thread, EPYC), forward + backward
    compiled takes 102 ms instead of 113-117 ms. Eager keeps PyTorch's own kernel, which is faster
    there (146-151 ms against 173-179 ms with the slices). Other padding modes are ``nn.Conv2d``'s.

    A second compile-time form: a stride-1 convolution with a large odd kernel to fewer than 8
    channels (the ResNet generator's last 7×7 layer to RGB) runs as :func:`polyphase_conv2d` when
    the output's height and width are even. It needs static shapes (``torch.compile(dynamic=False)``,
    as :meth:`genlab.models.base.GenerativeModel.compile_networks` compiles): with symbolic sizes
    inductor (torch 2.13) fails to lower its reshapes.

    A third: a convolution with at most :attr:`matmul_max_rows` output pixels in the batch (batch ×
    height × width; a U-Net's innermost layers, 8×8 → 4×4 → 2×2 → 1×1 and back, at CycleGAN's batches
    of 4 and 8; a DCGAN discriminator's 4×4 → 1×1 layer) runs as :func:`~genlab.nn.matmul_conv.matmul_conv2d`,
    one matrix product over the output pixels' windows, compiled and (since 2026-12-06) eager too.

    And a form for eager and compiled runs alike (:attr:`winograd`): a 3×3 stride-1 convolution of
    an fp32 channels-last map (not under autocast) with at least :attr:`winograd_min_channels` input
    and output channels and :attr:`winograd_min_pixels` output pixels, whose height and width are
    multiples of 4, runs as :func:`genlab.nn.winograd.winograd_conv3x3` after its padding: the ResNet
    generator's residual layers (128 channels at ngf 32) and the U-Net's 64-channel resize-convolutions.
    Its values differ from ``F.conv2d``'s by ~1e-5 relative (that module's docstring). Capped to AVX2
    (one thread, EPYC) it makes the ResNet-6 CycleGAN step faster, eager and compiled (BENCHMARKS.md,
    "What bounds the AVX2 ratios").

    In eager train steps, a layer with many output channels over a small map (the DCGAN
    discriminators' 512-channel layers) computes its weight gradient as one matrix product
    (:mod:`genlab.nn.matmul_conv`, where :func:`~genlab.nn.matmul_conv.uses_matmul_weight_grad` says so).
    """

    #: output pixels in the batch (batch × height × width) up to which the layer is
    #: :func:`~genlab.nn.matmul_conv.matmul_conv2d`. CycleGAN's 64-px U-Net step (batches of 4 and 8), compiled, one thread,
    #: EPYC-BF16, against the same step without the form (``benchmarks/compile_forms_ab.py --without
    #: matmul``): this threshold 1.10-1.14× in bf16 and 1.13-1.20× capped to AVX2 (three runs each);
    #: 4 output pixels per image 1.09× and 1.10×; 64 per image (8×8 maps too) 1.00× in bf16, the gain
    #: of the smaller maps lost on the larger ones (one run each). Eager, the same threshold: the U-Net step
    #: 1.086× faster capped to AVX2 and 1.040× in bf16 (``--eager --without matmul``, one run each)
    matmul_max_rows = 128
    #: fp32 runs compute eligible 3×3 layers by Winograd F(4×4, 3×3) (``False``: ``F.conv2d``)
    winograd = True
    #: fewest input and output channels, and output pixels in the batch (batch × height × width), for
    #: the Winograd form. Forward + backward against ``nn.Conv2d``, the weight's transform reused as in
    #: a train step, capped to AVX2, one thread, EPYC, over three runs (``benchmarks/winograd_ab.py``;
    #: ``benchmarks/results/winograd/layers_avx2_faster_transforms.md``): 128 → 128 at 16×16 1.45–1.79×
    #: at batch 4, 1.15–1.71× at batch 2 (512 pixels), 0.87–1.42× at batch 1; 64 → 64 and 128 → 64 at
    #: 32×32 1.22–1.63×, 256 → 64 at 16×16 1.34–1.51×, 256 → 256 at 64×64 (the paper's 256 px, batch 1)
    #: 2.4–2.6×; 64 → 32 at 64×64 0.81–1.03× and 512 → 256 at 4×4, batch 8 (128 pixels) 0.99–1.00×.
    #: Lowered from 128 channels and 1,024 pixels once the transforms got faster: the U-Net recipe's
    #: eager step 1.02× faster (its 64-channel resize-convolutions), compiled and ResNet-6 unchanged
    winograd_min_channels = 64
    winograd_min_pixels = 512
    #: eager train steps compute eligible weight gradients as one matrix product (:mod:`genlab.nn.matmul_conv`;
    #: ``False``: oneDNN's)
    matmul_weight_grad = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        compiling = torch.compiler.is_compiling()
        if self._winograd_input(x):
            weight = self.weight  # read once: a parametrized weight is recomputed at every read
            return winograd_conv3x3(self._pad(x, compiling), weight, self.bias,
                                    None if compiling else self._winograd_weight(weight))
        if not compiling:
            if uses_matmul_weight_grad(self, x):
                return forward_with_matmul_weight_grad(self, x)
            if x.dim() == 4 and self._tiny_output(x):
                return matmul_conv2d(self._pad(x, compiling), self.weight, self.bias, self.stride)
            return super().forward(x)
        tiny, thin = self._tiny_output(x), self._thin_output()
        if self.padding_mode != "reflect" and not thin and not tiny:
            return super().forward(x)
        x = self._pad(x, compiling)
        if tiny:
            return matmul_conv2d(x, self.weight, self.bias, self.stride)
        if thin and (x.shape[-2] - self.kernel_size[0]) % 2 and (x.shape[-1] - self.kernel_size[1]) % 2:
            return polyphase_conv2d(x, self.weight, self.bias)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def _pad(self, x: torch.Tensor, compiling: bool) -> torch.Tensor:
        """``x`` with this layer's padding (reflect or zeros) added; reflection by :func:`reflect_pad2d` when compiling."""
        pad = self._reversed_padding_repeated_twice
        if self.padding_mode == "reflect":
            return reflect_pad2d(x, pad) if compiling else F.pad(x, pad, mode="reflect")
        return F.pad(x, pad)

    def _winograd_input(self, x: torch.Tensor) -> bool:
        """Whether the Winograd form computes this layer for input ``x`` (see :attr:`winograd`)."""
        if not (self.winograd and self.kernel_size == (3, 3) and self.stride == (1, 1) and self.dilation == (1, 1)
                and self.groups == 1 and not isinstance(self.padding, str) and self.padding_mode in ("reflect", "zeros")
                and min(self.in_channels, self.out_channels) >= self.winograd_min_channels):
            return False
        if (x.dim() != 4 or x.dtype != torch.float32 or weight_parameter(self).dtype != torch.float32
                or torch.is_autocast_enabled(x.device.type) or not x.is_contiguous(memory_format=torch.channels_last)):
            return False
        height, width = (n + 2 * p - 2 for n, p in zip(x.shape[-2:], self.padding))
        return (height > 0 and width > 0 and height % 4 == 0 and width % 4 == 0
                and x.shape[0] * height * width >= self.winograd_min_pixels)

    def _winograd_weight(self, weight: torch.Tensor) -> torch.Tensor | None:
        """Inside :func:`reuse_winograd_weights`, :func:`~genlab.nn.winograd.winograd_weight` of ``weight``
        (this layer's), computed once per optimizer step; ``None`` (computed per call) outside."""
        if not _REUSE.depth:
            return None
        cached = getattr(self, "_winograd_cache", None)
        key = (_REUSE.generation, weight.data_ptr(), weight._version)  # load_state_dict's copy_ counts up the version
        if cached is None or cached[0]() is not weight or cached[1] != key:
            cached = self._winograd_cache = (weakref.ref(weight), key, winograd_weight(weight))
            _REUSE.holders.add(self)
        return cached[2]

    def _tiny_output(self, x: torch.Tensor) -> bool:
        """At most :attr:`matmul_max_rows` output pixels in the batch for input ``x`` (no groups or dilation)."""
        if self.groups != 1 or self.dilation != (1, 1) or isinstance(self.padding, str):
            return False
        height, width = conv_output_size(self, x)
        return height >= 1 and width >= 1 and x.shape[0] * height * width <= self.matmul_max_rows  # else conv2d's error

    def _thin_output(self) -> bool:
        """A stride-1 convolution with a large odd kernel (≥ 5) and an image's few output channels (< 8),
        which :func:`polyphase_conv2d` computes faster (the ResNet generator's last 7×7 layer)."""
        k = self.kernel_size
        return (self.out_channels < 8 and k[0] == k[1] >= 5 and k[0] % 2 == 1 and self.stride == (1, 1)
                and self.dilation == (1, 1) and self.groups == 1)


@contextlib.contextmanager
def direct_convolutions():
    """Inside the block every :class:`PaddedConv2d` convolves directly (``F.conv2d``), its Winograd
    form off: ``genlab bench`` counts a step's FLOPs so, as the textbook convolutions' multiply-adds,
    which the Winograd form does fewer of."""
    before = PaddedConv2d.winograd
    PaddedConv2d.winograd = False
    try:
        yield
    finally:
        PaddedConv2d.winograd = before


class _ReuseScope:
    """State of :func:`reuse_winograd_weights`: open blocks, optimizer steps seen, layers holding a transform."""

    def __init__(self) -> None:
        self.depth, self.generation, self.holders, self.hook = 0, 0, weakref.WeakSet(), None

    def optimizer_stepped(self, *_) -> None:
        self.generation += 1


_REUSE = _ReuseScope()


@contextlib.contextmanager
def reuse_winograd_weights():
    """Inside the block (genlab's train steps), each :class:`PaddedConv2d` in its Winograd form transforms
    its weight once and reuses the transform in every call and backward until an optimizer steps
    (any ``torch.optim`` optimizer: a hook registered for the block). A CycleGAN step calls each
    generator three times: the ResNet-6 CycleGAN step, eager, capped to AVX2 (one thread, EPYC), ran
    1.35–1.40× the plain loop instead of 1.29× (``genlab bench --quick --only CycleGAN``, three runs).

    The transform is keyed by the weight tensor, its storage and its version counter, but fused Adam
    (``torch._fused_adam_``) writes weights without counting up the version, hence the hook; writes
    that bypass both (``.data`` assignments, collectives) must not happen inside the block. On leaving
    it the transforms are dropped (a 128 → 128 layer's is 2.4 MB)."""
    if _REUSE.depth == 0:
        _REUSE.hook = register_optimizer_step_post_hook(_REUSE.optimizer_stepped)
    _REUSE.depth += 1
    try:
        yield
    finally:
        _REUSE.depth -= 1
        if _REUSE.depth == 0:
            _REUSE.hook.remove()
            _REUSE.generation += 1
            for layer in list(_REUSE.holders):
                layer._winograd_cache = None
            _REUSE.holders = weakref.WeakSet()


def polyphase_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias)`` (stride 1, no padding) computed on the 2×2 polyphase components.

    ``x`` (N, I, H + k − 1, W + k − 1) with H and W even, ``weight`` (O, I, k, k) with k odd → (N, O, H, W).
    The input's 2×2 phases become channels (:func:`space_to_depth`: (N, 4I, H/2 + K − 1, …)), one
    convolution with the rearranged kernel (4O, 4I, K, K), K = (k + 1)/2, computes the output's four
    phases at half resolution, and :func:`depth_to_space` interleaves them. Output phase (a_y, a_x)
    at half-resolution tap (m_y, m_x) of input phase (b_y, b_x) uses the original tap
    (2m_y + b_y − a_y, 2m_x + b_x − a_x), zero outside the kernel: the same sums in another order.

    Why: oneDNN's CPU convolutions block output channels by 16 (AVX-512), so a convolution to 3
    channels costs as much as one to 16. Here the output has 4O = 12 channels and the work is
    (K²·16)/(k²·4) = 1.3× the original's, against 16/3 = 5.3× for the blocked original. Measured on
    the ResNet generator's last layer (ngf 32 → 3, 7×7, 64 px, batch 8, bf16, channels-last, one
    thread, EPYC-BF16), compiled forward + backward: 13.8 ms instead of 24.2 ms. A 3×3 kernel gains
    too little to pay for the rearranging (16.8 ms against 10.0 ms), hence ``_thin_output``'s k ≥ 5.
    """
    out_channels, in_channels, k = weight.shape[0], weight.shape[1], weight.shape[-1]
    kernel = _phases(_phases(weight).movedim(2, -1))  # (O, I, a_x, m_x, b_x, a_y, m_y, b_y)
    kernel = kernel.permute(5, 2, 0, 7, 4, 1, 6, 3)  # (a_y, a_x, O, b_y, b_x, I, m_y, m_x)
    kernel = kernel.reshape(4 * out_channels, 4 * in_channels, (k + 1) // 2, (k + 1) // 2)
    y = F.conv2d(space_to_depth(x), kernel, None if bias is None else bias.repeat(4))
    return depth_to_space(y)


def space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """(N, C, 2h, 2w) → (N, 4C, h, w), channel (b_y·2 + b_x)·C + c = pixel (2i + b_y, 2j + b_x) of channel c.

    ``pixel_unshuffle``'s values in phase-major channel order, built channels-last: each output pixel
    is four runs of C contiguous values, where ``pixel_unshuffle``'s c-major order interleaves them
    one value at a time (a copy inductor runs 2-3× slower)."""
    n, c, h, w = x.shape
    nhwc = x.permute(0, 2, 3, 1).reshape(n, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 2, 4, 5)
    return nhwc.reshape(n, h // 2, w // 2, 4 * c).permute(0, 3, 1, 2)


def depth_to_space(y: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`space_to_depth`: (N, 4C, h, w) → (N, C, 2h, 2w)."""
    n, c4, h, w = y.shape
    nhwc = y.permute(0, 2, 3, 1).reshape(n, h, w, 2, 2, c4 // 4).permute(0, 1, 3, 2, 4, 5)
    return nhwc.reshape(n, 2 * h, 2 * w, c4 // 4).permute(0, 3, 1, 2)


def _phases(w: torch.Tensor) -> torch.Tensor:
    """Taps of an odd kernel ``w`` (..., k) split for a stride-2 polyphase convolution: (..., 2, K, 2),
    K = (k + 1)/2, where [..., a, m, b] is tap 2m + b − a (zero where that is outside 0 … k − 1)."""
    k = w.shape[-1]
    half = (k + 1) // 2
    return torch.stack([F.pad(w, (0, 2 * half - k)).unflatten(-1, (half, 2)),
                        F.pad(w, (1, 2 * half - k - 1)).unflatten(-1, (half, 2))], dim=-3)


def reflect_pad2d(x: torch.Tensor, pad: tuple[int, ...] | list[int]) -> torch.Tensor:
    """``F.pad(x, pad, mode="reflect")`` for ``(N, C, H, W)`` maps, ``pad`` = (left, right, top,
    bottom), each smaller than the padded size, built from flipped slices and ``torch.cat``."""
    left, right, top, bottom = pad
    x = torch.cat([x[..., 1:left + 1].flip(-1), x, x[..., x.shape[-1] - right - 1:-1].flip(-1)], dim=-1)
    return torch.cat([x[..., 1:top + 1, :].flip(-2), x, x[..., x.shape[-2] - bottom - 1:-1, :].flip(-2)], dim=-2)


def make_norm(kind: NormKind, channels: int, *, affine: bool = False, eps: float = 1e-5) -> nn.Module:
    """A normalisation layer for ``(N, channels, H, W)`` feature maps.

    * ``"instance"`` — :class:`InstanceNorm` (Ulyanov et al. 2016): per sample and channel, mean and
      variance over H×W; no running statistics, the same in train and eval. ``affine`` adds a
      per-channel scale γ and shift β (2·channels parameters; the Keras layers' default, while
      CycleGAN's reference code uses ``InstanceNorm2d(affine=False)``).
    * ``"batch"`` — ``BatchNorm2d`` (always affine; running mean/var buffers).
    * ``"none"`` — identity.

    ``eps`` is added to the variance (PyTorch default 1e-5; TF-Addons/keras-contrib 1e-3).
    """
    check_choice("norm", kind, _NORMS)
    if kind == "instance":
        return InstanceNorm(channels, eps=eps, affine=affine)
    if kind == "batch":
        return nn.BatchNorm2d(channels, eps=eps)
    return nn.Identity()


class KerasSamePad2d(nn.Module):
    """Zero padding that makes a following ``padding=0`` convolution behave like Keras ``padding="same"``.

    For kernel k, stride s and input length n the output length is ceil(n / s); the total padding
    max((ceil(n/s) − 1)·s + k − n, 0) is split with the odd pixel at the bottom/right (TensorFlow's
    rule). For k = 4, s = 2 and even n that is (1, 1), PyTorch's ``padding=1``; for k = 3, s = 2 it is
    (0, 1) and for k = 4, s = 1 it is (1, 2), which no symmetric PyTorch padding reproduces.
    """

    def __init__(self, kernel_size: int, stride: int):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def _pads(self, n: int) -> tuple[int, int]:
        total = max((math.ceil(n / self.stride) - 1) * self.stride + self.kernel_size - n, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = self._pads(x.shape[-2])
        left, right = self._pads(x.shape[-1])
        return F.pad(x, (left, right, top, bottom))


class KerasSameConvTranspose2d(nn.ConvTranspose2d):
    """Stride-s transposed convolution with Keras ``padding="same"`` semantics: output = s × input.

    Computes the full transposed convolution ((n − 1)·s + k) and keeps the s·n pixels that Keras keeps:
    it drops ⌊(k − s)/2⌋ at the top/left and the rest at the bottom/right (the adjoint of
    :class:`KerasSamePad2d`). For k = 4, s = 2 this equals ``ConvTranspose2d(padding=1)``; for k = 3 it
    differs from ``ConvTranspose2d(padding=1, output_padding=1)`` by a one-pixel shift.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 2, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, bias=bias)
        self._crop = max(kernel_size - stride, 0) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        h, w = x.shape[-2] * self.stride[0], x.shape[-1] * self.stride[1]
        y = super().forward(x)
        return y[..., self._crop:self._crop + h, self._crop:self._crop + w]


def conv2d(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, *, bias: bool = True,
           padding: PaddingKind = "symmetric", padding_mode: str = "zeros") -> nn.Module:
    """A "same"-style convolution: output size ⌈n / stride⌉ for every n divisible by ``stride``.

    ``padding="symmetric"`` pads ⌊(k − 1)/2⌋ on every side (``padding_mode`` "zeros" or "reflect");
    ``"keras"`` pads like Keras ``padding="same"`` (zeros, odd pixel bottom/right, see
    :class:`KerasSamePad2d`). Exception: k = 4, s = 1 with symmetric padding gives n − 1, as in the
    PatchGAN of pix2pix/CycleGAN (which relies on it).
    """
    check_choice("padding", padding, _PADDINGS)
    if padding == "keras":
        return nn.Sequential(KerasSamePad2d(kernel_size, stride), nn.Conv2d(in_channels, out_channels, kernel_size, stride, 0, bias=bias))
    return PaddedConv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, bias=bias,
                        padding_mode=padding_mode)


def up2d(in_channels: int, out_channels: int, kernel_size: int, *, mode: UpsampleKind = "deconv", bias: bool = True,
         padding: PaddingKind = "symmetric", padding_mode: str = "zeros", resize_mode: str = "nearest") -> nn.Module:
    """×2 up-sampling layer ``(N, in, h, w)`` → ``(N, out, 2h, 2w)``.

    * ``"deconv"`` — transposed convolution, kernel ``kernel_size``, stride 2 (``padding="symmetric"``:
      PyTorch padding ⌊(k − 1)/2⌋ with the output padding that makes the size exactly 2h;
      ``"keras"``: :class:`KerasSameConvTranspose2d`). Its uneven kernel overlap causes checkerboard
      artifacts when k is not divisible by the stride (Odena et al. 2016, Distill "Deconvolution and
      Checkerboard Artifacts", §"Overlap & Artifacts").
    * ``"resize"`` — ×2 resize (``resize_mode``: "nearest", as Odena et al. recommend, by
      :class:`NearestUpsample2x`; or an ``nn.Upsample`` mode such as "bilinear") then a 3×3 stride-1
      convolution (padding 1, ``padding_mode``), the resize-convolution of Odena et al. 2016
      §"Better Upsampling". Parameters: 9·in·out (+ out bias).
    """
    check_choice("upsample", mode, _UPSAMPLES)
    if mode == "resize":
        if resize_mode == "nearest":
            upsample: nn.Module = NearestUpsample2x()
        else:
            kwargs = {"align_corners": False} if resize_mode in ("bilinear", "bicubic") else {}
            upsample = nn.Upsample(scale_factor=2, mode=resize_mode, **kwargs)
        conv = PaddedConv2d(in_channels, out_channels, 3, 1, 1, bias=bias, padding_mode=padding_mode)
        return NearestResizeConv(upsample, conv) if resize_mode == "nearest" else nn.Sequential(upsample, conv)
    if padding == "keras":
        return KerasSameConvTranspose2d(in_channels, out_channels, kernel_size, 2, bias=bias)
    check_choice("padding", padding, _PADDINGS)
    if kernel_size < 2:
        raise ValueError(f"kernel_size: got {kernel_size}; a stride-2 transposed convolution needs >= 2")
    pad = (kernel_size - 1) // 2
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size, 2, pad, output_padding=2 + 2 * pad - kernel_size, bias=bias)


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def check_multiple(net: str, x: torch.Tensor, multiple: int) -> None:
    """Raise ``ValueError`` unless ``x`` is ``(N, C, H, W)`` with H and W multiples of ``multiple``."""
    if x.dim() != 4:
        raise ValueError(f"{net} takes a batch of images (N, C, H, W); got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(f"{net}: input size {h}×{w} is not a multiple of {multiple} in both height and width; "
                         f"pad or crop the image to a multiple of {multiple} (e.g. {_round_up(h, multiple)}×{_round_up(w, multiple)})")
