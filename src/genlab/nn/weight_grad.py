"""Convolutions whose weight gradient is one matrix product, for layers with many output rows.

oneDNN computes a convolution's weight gradient well below its forward's speed when the gradient has
many rows (the weight's first dimension: output channels of a convolution, input channels of a
transposed one) over a small map. Capped to AVX2 (one thread, EPYC, channels-last fp32, batch 32,
``benchmarks/weight_grad_ab.py``): the Radford DCGAN discriminator's 256 → 512 layer (8 → 4 px) takes
44 ms for its weight gradient against 19 ms forward, its generator's 512 → 256 (4 → 8 px) 37 ms, the
seed DCGAN generator's 512 → 256 5×5 (6 → 12 px) 159 ms against 91 ms forward.

Here the weight gradient is ``gradᵀ @ windows``: every output pixel's k_y × k_x × C window of the
(padded) input becomes a row (:func:`windows`), and the product over the N · H_out · W_out pixels gives
the (O, k_y, k_x, I) gradient in the channels-last layout genlab keeps weights in. The input gradient
stays oneDNN's (``aten.convolution_backward`` asked for it alone), and so does the forward. For a
transposed convolution the roles swap: its weight gradient is the weight gradient of the convolution
that maps the output gradient back onto its input's pixels (windows of the output gradient).

The product pays when its rows (the weight's first dimension) are many, so that each window, copied
once, is used by many rows; with fewer the windows' copy costs more than oneDNN's (the same script:
512 rows 1.43–1.92× faster, 256 rows 0.84–1.09×, 128 rows 0.59–0.60× capped to AVX2; bf16 512 rows
1.35–1.70×). Hence :data:`MIN_ROWS`, and :data:`MAX_WINDOW_BYTES` bounds the windows' memory.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

#: fewest rows of the weight gradient (the weight's first dimension) for which it is a matrix product
MIN_ROWS = 512
#: most bytes of the windows the product reads (batch × output pixels × k_y · k_x · channels values)
MAX_WINDOW_BYTES = 128 * 2**20


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


def uses_matmul_weight_grad(layer: nn.Conv2d | nn.ConvTranspose2d, x: torch.Tensor) -> bool:
    """Whether ``layer`` (a ``Conv2d`` or ``ConvTranspose2d`` form with a ``matmul_weight_grad`` switch) computes its weight gradient for input ``x``
    by :func:`conv2d_matmul_weight_grad`: an eager train step on the CPU (grad enabled, weight trained),
    a channels-last 4-D ``x``, zero padding without groups or dilation, ≥ :data:`MIN_ROWS` weight rows
    and at most :data:`MAX_WINDOW_BYTES` of windows."""
    weight = layer.weight
    if (not layer.matmul_weight_grad or weight.shape[0] < MIN_ROWS or not (weight.requires_grad and torch.is_grad_enabled())
            or torch.compiler.is_compiling() or x.device.type != "cpu" or x.dim() != 4 or layer.groups != 1
            or layer.dilation != (1, 1) or layer.padding_mode != "zeros" or isinstance(layer.padding, str)
            or not x.is_contiguous(memory_format=torch.channels_last)):
        return False
    ky, kx = layer.kernel_size
    if isinstance(layer, nn.ConvTranspose2d):  # windows of the output gradient, one per input pixel
        pixels, channels = x.shape[2] * x.shape[3], layer.out_channels
    else:
        pixels = math.prod((n + 2 * p - k) // s + 1 for n, p, k, s
                           in zip(x.shape[2:], layer.padding, layer.kernel_size, layer.stride))
        channels = layer.in_channels
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


class MatmulGradConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (same arguments, parameters and checkpoints) whose weight gradient is one
    matrix product where :func:`uses_matmul_weight_grad` says it pays (the DCGAN generators' 512-channel
    layers); elsewhere, and with an ``output_size``, PyTorch's own."""

    #: compute the weight gradient by :func:`conv2d_matmul_weight_grad` where it pays (``False``: never)
    matmul_weight_grad = True

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is None and uses_matmul_weight_grad(self, x):
            return forward_with_matmul_weight_grad(self, x)
        return super().forward(x, output_size)
