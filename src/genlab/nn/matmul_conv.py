"""Convolutions as matrix products, where oneDNN's CPU kernels run far below their peak.

Three forms, each the same function as PyTorch's layer (values to float rounding):

* :func:`matmul_conv2d`: a convolution with a few output pixels (a U-Net's innermost layers, a DCGAN
  discriminator's last 4×4 → 1×1 layer), one product over the output pixels' windows.
* :func:`one_pixel_conv_transpose2d`: a transposed convolution of a 1×1 map without padding (a DCGAN
  generator's first layer, z → 4×4), which is a linear layer: capped to AVX2 (one thread, EPYC,
  batch 32, ``python benchmarks/matmul_conv_ab.py``) the Radford generator's 100 → 512 layer takes
  1.7 ms forward + backward instead of 13.7 ms.
* :func:`conv2d_matmul_weight_grad`: a (transposed) convolution computed by oneDNN whose weight gradient
  is one product. oneDNN computes the weight gradient well below its forward's speed when the gradient
  has many rows (the weight's first dimension: output channels of a convolution, input channels of a
  transposed one) over a small map. Capped to AVX2 (one thread, EPYC, channels-last fp32, batch 32,
  the same script): the Radford DCGAN discriminator's 256 → 512 layer (8 → 4 px) takes 44–67 ms for
  its weight gradient (as many multiply-adds as its ~19 ms forward), 24–27 ms as the product here; the
  seed DCGAN generator's 512 → 256 5×5 layer (6 → 12 px) 175–190 ms against 81–88 ms.

  Here the weight gradient is ``gradᵀ @ windows``: every output pixel's k_y × k_x × C window of the
  (padded) input becomes a row (:func:`windows`), and the product over the N · H_out · W_out pixels
  gives the (O, k_y, k_x, I) gradient in the channels-last layout genlab keeps weights in. The input
  gradient stays oneDNN's (``aten.convolution_backward`` asked for it alone), and so does the forward.
  For a transposed convolution the roles swap: its weight gradient is the weight gradient of the
  convolution that maps the output gradient back onto its input's pixels (windows of the output
  gradient). The product pays when its rows are many, so that each window, copied once, is used by
  many rows; with fewer the windows' copy costs more than oneDNN's kernel saves (in one-off sweeps of
  the DCGANs' layer shapes capped to AVX2: 512 rows 1.4–2.2× faster, 256 rows 0.84–1.09×, 64–128 rows
  0.4–0.9×; in bf16 512 rows 1.3–1.7×). Hence
  :data:`MIN_ROWS`, and :data:`MAX_WINDOW_BYTES` bounds the windows' memory.

:class:`~genlab.nn.layers.PaddedConv2d` uses the first and the third, :class:`MatmulConvTranspose2d`
the second and the third.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.utils import parametrize

#: fewest rows of the weight gradient (the weight's first dimension) for which it is a matrix product
MIN_ROWS = 512
#: most bytes of the windows the product reads (batch × output pixels × k_y · k_x · channels values)
MAX_WINDOW_BYTES = 128 * 2**20


def matmul_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  stride: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride)`` (no padding) as one matrix product, for maps of a few pixels.

    ``x`` (N, I, H, W), ``weight`` (O, I, k_y, k_x) → (N, O, H_out, W_out), channels-last. Each output
    pixel's k_y × k_x × I window of ``x`` becomes a row (N · H_out · W_out rows), multiplied by the
    weight as an (O, k_y · k_x · I) matrix; ``x`` and the weight are read in channels-last order,
    the layout genlab trains in, so neither is rearranged.

    Why: on maps of a few pixels oneDNN's convolutions run far below their peak (a U-Net's innermost
    256 → 256 4×4 layer, 2×2 → 1×1 at batch 8, compiled on an AVX2 core: 3.8 ms forward + backward,
    where its 25 M multiply-adds need 0.5 ms at that core's fp32 peak), and the weight gradient
    comes back in oneDNN's plain layout, which PyTorch copies into the weight's channels-last layout
    at every backward (1.7 ms for that layer's 1 M weights). Here the product's weight gradient is
    already in that layout.
    Cost: the windows overlap, so ``x`` is read up to k_y · k_x / (s_y · s_x) times; meant for at most
    a few output pixels (:attr:`genlab.nn.layers.PaddedConv2d.matmul_max_rows`).
    """
    n, in_channels, height, width = x.shape
    out_channels, _, ky, kx = weight.shape
    sy, sx = stride
    rows, cols = (height - ky) // sy + 1, (width - kx) // sx + 1
    nhwc = x.permute(0, 2, 3, 1)
    windows = torch.stack([nhwc[:, r * sy:r * sy + ky, c * sx:c * sx + kx] for r in range(rows) for c in range(cols)],
                          dim=1)  # (N, rows · cols, k_y, k_x, I)
    y = F.linear(windows.reshape(n * rows * cols, ky * kx * in_channels),
                 weight.permute(0, 2, 3, 1).reshape(out_channels, ky * kx * in_channels), bias)
    return y.reshape(n, rows, cols, out_channels).permute(0, 3, 1, 2)


def one_pixel_conv_transpose2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.conv_transpose2d(x, weight, bias)`` of a 1×1 map without padding (any stride) as one linear layer.

    ``x`` (N, I, 1, 1), ``weight`` (I, O, k_y, k_x) → (N, O, k_y, k_x), channels-last: output pixel
    (a, b) is Σ_i x[n, i] · weight[i, :, a, b], so the weight read as a (k_y · k_x · O, I) matrix (a
    view of a channels-last weight) maps the input's I values to the whole output at once. Through
    ``F.linear``, so CPU autocast casts it as it casts a convolution."""
    n, in_channels = x.shape[:2]
    _, out_channels, ky, kx = weight.shape
    y = F.linear(x.reshape(n, in_channels), weight.permute(2, 3, 1, 0).reshape(ky * kx * out_channels, in_channels),
                 None if bias is None else bias.repeat(ky * kx))
    return y.view(n, ky, kx, out_channels).permute(0, 3, 1, 2)


def windows(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
            rows: int, cols: int) -> torch.Tensor:
    """The ``rows × cols`` windows of ``x`` (N, C, H, W) zero-padded by ``padding`` (p_y, p_x), as a
    (N · rows · cols, k_y · k_x · C) matrix: row (n, r, c) is the k_y × k_x × C block at
    (r · s_y, c · s_x) of the padded map, channel fastest (channels-last order)."""
    n, channels = x.shape[:2]
    py, px = padding
    nhwc = F.pad(x, (px, px, py, py)).permute(0, 2, 3, 1) if py or px else x.permute(0, 2, 3, 1)
    nhwc = nhwc.contiguous()
    s_n, s_h, s_w, s_c = nhwc.stride()
    ky, kx = kernel
    view = nhwc.as_strided((n, rows, cols, ky, kx, channels),
                           (s_n, stride[0] * s_h, stride[1] * s_w, s_h, s_w, s_c))
    return view.reshape(n * rows * cols, ky * kx * channels)


def _as_rows(t: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) → (N · H · W, C), channel fastest (free for a channels-last ``t``)."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def matmul_weight_grad(grad: torch.Tensor, x: torch.Tensor, weight_shape: torch.Size, stride: tuple[int, int],
                       padding: tuple[int, int], transposed: bool) -> torch.Tensor:
    """The weight gradient of ``F.conv2d(x, w, stride=stride, padding=padding)`` (``transposed=False``, w
    (O, I, k_y, k_x)) or of ``F.conv_transpose2d(x, w, ...)`` (w (I, O, k_y, k_x)) for the output
    gradient ``grad``, as one matrix product; shape ``weight_shape``, channels-last."""
    rows, _, ky, kx = weight_shape
    if transposed:  # w[i, o, t] = Σ x[n, i, a, b] · grad_padded[n, o, a·s + t_y, b·s + t_x]
        left, right = x, grad
    else:           # w[o, i, t] = Σ grad[n, o, r, c] · x_padded[n, i, r·s + t_y, c·s + t_x]
        left, right = grad, x
    patches = windows(right, (ky, kx), stride, padding, left.shape[2], left.shape[3])
    product = _as_rows(left).t() @ patches  # (rows, k_y · k_x · C)
    return product.view(rows, ky, kx, -1).permute(0, 3, 1, 2)


class _MatmulWeightGradConv(torch.autograd.Function):
    """A (transposed) 2-D convolution computed by PyTorch, its weight gradient by :func:`matmul_weight_grad`."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, output_padding, transposed):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.setup = (stride, padding, output_padding, transposed, bias is not None)
        if transposed:
            return F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        stride, padding, output_padding, transposed, has_bias = ctx.setup
        grad = grad.contiguous(memory_format=torch.channels_last)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, stride, padding, (1, 1), transposed, output_padding, 1, (True, False, False))[0]
        if ctx.needs_input_grad[1]:
            grad_w = matmul_weight_grad(grad, x, weight.shape, stride, padding, transposed)
        if has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None, None, None


def conv2d_matmul_weight_grad(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                              stride: tuple[int, int] = (1, 1), padding: tuple[int, int] = (0, 0),
                              output_padding: tuple[int, int] = (0, 0), transposed: bool = False) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride, padding)`` (or ``F.conv_transpose2d(…, output_padding)`` with
    ``transposed=True``) whose weight gradient is :func:`matmul_weight_grad`; no groups or dilation, no
    double backward. ``x`` (N, C, H, W), channels-last for speed."""
    return _MatmulWeightGradConv.apply(x, weight, bias, tuple(stride), tuple(padding), tuple(output_padding),
                                       transposed)


def conv_output_size(layer: nn.Conv2d, x: torch.Tensor) -> tuple[int, int]:
    """Output (height, width) of convolution ``layer`` (numeric padding, no dilation) for input ``x`` (…, H, W);
    < 1 where the kernel does not fit."""
    height, width = ((n + 2 * p - k) // s + 1 for n, p, k, s
                     in zip(x.shape[-2:], layer.padding, layer.kernel_size, layer.stride))
    return height, width


def weight_parameter(layer: nn.Module) -> torch.Tensor:
    """The parameter behind ``layer.weight``: the weight itself, or for a parametrized weight (spectral
    norm) its ``original``. Reading it, unlike ``layer.weight``, computes nothing: each read of a
    parametrized weight reruns the parametrization (a spectral norm's power iteration in training), so a
    form that checked the weight and then used it would iterate twice per call where the PyTorch layer
    iterates once."""
    if parametrize.is_parametrized(layer, "weight"):
        return layer.parametrizations.weight.original
    return layer.weight


def uses_matmul_weight_grad(layer: nn.Conv2d | nn.ConvTranspose2d, x: torch.Tensor) -> bool:
    """Whether ``layer`` (a ``Conv2d`` or ``ConvTranspose2d`` form with a ``matmul_weight_grad`` switch)
    computes its weight gradient for input ``x`` by :func:`conv2d_matmul_weight_grad`: an eager train
    step on the CPU (grad enabled, weight trained), a channels-last 4-D ``x``, zero padding without
    groups or dilation, ≥ :data:`MIN_ROWS` weight rows and at most :data:`MAX_WINDOW_BYTES` of windows.
    Reads the layer's attributes only, not its (possibly parametrized) weight."""
    transposed = isinstance(layer, nn.ConvTranspose2d)
    rows = layer.in_channels if transposed else layer.out_channels  # the weight's first dimension
    if (not layer.matmul_weight_grad or rows < MIN_ROWS or not torch.is_grad_enabled()
            or torch.compiler.is_compiling() or x.device.type != "cpu" or x.dim() != 4 or layer.groups != 1
            or layer.dilation != (1, 1) or layer.padding_mode != "zeros" or isinstance(layer.padding, str)
            or not x.is_contiguous(memory_format=torch.channels_last) or not weight_parameter(layer).requires_grad):
        return False
    ky, kx = layer.kernel_size
    if transposed:  # windows of the output gradient, one per input pixel
        pixels, channels = x.shape[2] * x.shape[3], layer.out_channels
    else:
        height, width = conv_output_size(layer, x)
        pixels, channels = max(height, 0) * max(width, 0), layer.in_channels
    itemsize = torch.get_autocast_dtype("cpu").itemsize if torch.is_autocast_enabled("cpu") else x.element_size()
    return pixels > 0 and x.shape[0] * pixels * ky * kx * channels * itemsize <= MAX_WINDOW_BYTES


def forward_with_matmul_weight_grad(layer: nn.Conv2d | nn.ConvTranspose2d, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` by :func:`conv2d_matmul_weight_grad` (for an ``x`` that :func:`uses_matmul_weight_grad`
    accepts). Under CPU autocast the input, weight and bias are cast to its dtype first, as autocast
    casts a convolution's, so the saved tensors and the gradient share one dtype."""
    transposed = isinstance(layer, nn.ConvTranspose2d)
    weight, bias = layer.weight, layer.bias
    if torch.is_autocast_enabled("cpu"):
        dtype = torch.get_autocast_dtype("cpu")
        x, weight, bias = x.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype)
    with torch.autocast("cpu", enabled=False):
        return conv2d_matmul_weight_grad(x, weight, bias, layer.stride, layer.padding,
                                         layer.output_padding if transposed else (0, 0), transposed)


class MatmulConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (same arguments, parameters and checkpoints) computed as
    :func:`one_pixel_conv_transpose2d` for a 1×1 input without padding (a DCGAN generator's first layer),
    and with its weight gradient as one matrix product where :func:`uses_matmul_weight_grad` says it
    pays (the DCGAN generators' 512-channel layers); elsewhere, and with an ``output_size``, PyTorch's own."""

    #: compute the weight gradient by :func:`conv2d_matmul_weight_grad` where it pays (``False``: never)
    matmul_weight_grad = True
    #: compute a 1×1 input without padding by :func:`one_pixel_conv_transpose2d` (``False``: never)
    one_pixel_linear = True

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is None and self._one_pixel_input(x):
            return one_pixel_conv_transpose2d(x, self.weight, self.bias)
        if output_size is None and uses_matmul_weight_grad(self, x):
            return forward_with_matmul_weight_grad(self, x)
        return super().forward(x, output_size)

    def _one_pixel_input(self, x: torch.Tensor) -> bool:
        return (self.one_pixel_linear and x.dim() == 4 and x.shape[2:] == (1, 1) and self.padding == (0, 0)
                and self.output_padding == (0, 0) and self.groups == 1 and self.dilation == (1, 1))
