"""3×3 stride-1 convolutions by Winograd's minimal filtering F(4×4, 3×3), for fp32 runs.

Lavin & Gray 2016 ("Fast Algorithms for Convolutional Neural Networks", §4.2): each 4×4 block of
the output is computed from a 6×6 tile of the input as Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A, so that a 3×3
convolution takes 36 multiplications per 16 outputs and input channel instead of 144. Over
channels the element-wise products become 36 matrix products, (tiles × C) · (C × O), one per tile
position. Written as PyTorch operations — the tile transforms as one small matrix product per axis
over a view of the input's windows, the products as one ``bmm`` — with a hand-written backward that,
like ``nn.Conv2d``'s, keeps only the input and the weight and recomputes their transforms: the
autograd of the same operations would keep ~4.5 maps of the output's size per layer. Forward and
backward are operators of their own (``genlab::winograd_conv3x3``, ``torch.library.custom_op``), which
``torch.compile`` calls without tracing into them. A caller that keeps the weight's transform
(:func:`winograd_weight`) passes it in: ``genlab.nn.layers.reuse_winograd_weights`` does, once per
optimizer step.

Why: on CPUs without bf16, both genlab's step and a plain PyTorch loop run oneDNN's fp32 direct
convolutions, already at 70–90 % of the machine's fp32 peak, and oneDNN has no Winograd path for
them there. The ResNet CycleGAN generator's residual convolutions (3×3, 128 → 128, 16×16 maps at
64 px) are 60 % of its step; forward + backward of one at batch 4 takes 5.4–7.0 ms this way, its
weight's transform reused, against 9.7–10.8 ms (1.45–1.79×; ~1.65× at batch 8, 2.4–2.6× at the
paper's 256 px; capped to AVX2, one thread, EPYC, ``benchmarks/winograd_ab.py``; run-to-run noise
on this machine is ±10 %).

Precision: the transforms' constants (up to 8 and 1/24) cost digits. Against ``F.conv2d`` in fp32 the
largest differences were 2.7e-5 for outputs of magnitude ~3 (relative ~1e-5) and 1.5e-3 for weight
gradients of magnitude ~200; bf16 would lose far more, so bf16 runs (autocast) keep oneDNN's
convolutions, which are fast there anyway.
"""

from __future__ import annotations

import functools

import torch

#: output block size m of F(m×m, 3×3) and its input tile size m + 2
BLOCK, TILE = 4, 6


@functools.cache
def _matrices(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(Bᵀ (6×6), G ⊗ G (36×9), Aᵀ (4×6)) of F(4×4, 3×3), interpolation points 0, ±1, ±2, ∞. The
    weight's transform G w Gᵀ is one product with the Kronecker square of G (row 6i + j, column 3a + b)."""
    bt = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
          [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
    g = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
         [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
    at = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
    bt, g, at = (torch.tensor(m, dtype=dtype, device=device) for m in (bt, g, at))
    return bt, torch.kron(g, g), at


def _both_axes(m: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """M t Mᵀ for each column of ``t`` (r, r, K) with ``m`` (k, r) → (k, k, K), contiguous: one matrix
    product per axis. Faster than ``einsum`` over both axes at once, which forms the k²×r² Kronecker
    product (input transform of a 128-channel map at batch 4: 0.32 against 0.44 ms, AVX2 caps)."""
    k, r = m.shape
    return torch.matmul(m, torch.mm(m, t.reshape(r, -1)).view(k, r, -1))


def _input_transform(x: torch.Tensor, bt: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) → Bᵀ d B of every 6×6 tile (stride 4): (36, N·th·tw, C)."""
    c = x.shape[1]
    windows = x.permute(0, 2, 3, 1).unfold(1, TILE, BLOCK).unfold(2, TILE, BLOCK)  # (N, th, tw, C, 6, 6), a view
    return _both_axes(bt, windows.permute(4, 5, 0, 1, 2, 3)).view(TILE * TILE, -1, c)


def _weight_transform(weight: torch.Tensor, gg: torch.Tensor) -> torch.Tensor:
    """(O, C, 3, 3) → G w Gᵀ per channel pair: (36, O, C), contiguous. The small weight is permuted
    first, so that the 4× larger result needs no transposing copy (one took 2.8 ms of a 128 → 128
    layer's backward at batch 4, capped to AVX2)."""
    o, c = weight.shape[:2]
    return torch.mm(gg, weight.permute(2, 3, 0, 1).reshape(9, o * c)).view(TILE * TILE, o, c)


def _weight_gradient(grad_u: torch.Tensor, gg: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`_weight_transform`: (36, O, C) → (O, C, 3, 3), contiguous."""
    _, o, c = grad_u.shape
    return torch.mm(gg.t(), grad_u.view(TILE * TILE, o * c)).view(3, 3, o, c).permute(2, 3, 0, 1).contiguous()


def _fold_tiles(tiles: torch.Tensor) -> torch.Tensor:
    """(N, th, 6, tw, 6, C), one value per position of each overlapping input tile → their sums on the
    input grid, (N, 4·th + 2, 4·tw + 2, C) (the adjoint of taking the tiles)."""
    n, th, _, tw, _, c = tiles.shape
    rows = tiles.new_zeros(n, th + 1, BLOCK, tw, TILE, c)  # row 4T + r of the input, 4 spare rows
    rows[:, :th] += tiles[:, :, :BLOCK]
    rows[:, 1:, :TILE - BLOCK] += tiles[:, :, BLOCK:]
    rows = rows.view(n, BLOCK * (th + 1), tw, TILE, c)
    grid = rows.new_zeros(n, BLOCK * (th + 1), tw + 1, BLOCK, c)
    grid[:, :, :tw] += rows[:, :, :, :BLOCK]
    grid[:, :, 1:, :TILE - BLOCK] += rows[:, :, :, BLOCK:]
    return grid.view(n, BLOCK * (th + 1), BLOCK * (tw + 1), c)[:, :BLOCK * th + 2, :BLOCK * tw + 2].contiguous()


@torch.library.custom_op("genlab::winograd_conv3x3", mutates_args=())
def _forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
             transformed: torch.Tensor | None) -> torch.Tensor:
    """The forward pass: (N, C, H, W) → (N, O, H − 2, W − 2), channels-last. An operator of its own,
    so that ``torch.compile`` calls it as it is instead of tracing it: inductor took ten times as long
    to compile the ResNet generator with the traced form (218 s against 22 s, cold cache)."""
    bt, gg, at = _matrices(x.device, x.dtype)
    n, _, h, w = x.shape
    th, tw = (h - 2) // BLOCK, (w - 2) // BLOCK
    u = _weight_transform(weight, gg) if transformed is None else transformed
    products = torch.bmm(_input_transform(x, bt), u.transpose(1, 2))  # (36, P, O)
    del u
    y = _both_axes(at, products.view(TILE, TILE, -1)).view(BLOCK, BLOCK, n, th, tw, -1)  # (4, 4, N, th, tw, O)
    del products  # each buffer freed as soon as it is used: transients are several maps large
    y = y.permute(2, 3, 0, 4, 1, 5).reshape(n, BLOCK * th, BLOCK * tw, -1)
    if bias is not None:
        y = y.add_(bias) if y.is_contiguous() else y + bias
    return y.permute(0, 3, 1, 2)


@_forward.register_fake
def _forward_shape(x, weight, bias, transformed):
    n, _, h, w = x.shape
    return x.new_empty(n, h - 2, w - 2, weight.shape[0]).permute(0, 3, 1, 2)


@torch.library.custom_op("genlab::winograd_conv3x3_backward", mutates_args=())
def _backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, transformed: torch.Tensor | None,
              need_x: bool, need_weight: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of the input and the weight (an empty tensor for one not needed). Recomputes the
    input's transform, and the weight's unless ``transformed`` is given, as a convolution's
    backward recomputes from the input and the weight."""
    bt, gg, at = _matrices(x.device, x.dtype)
    n, c, h, w = x.shape
    th, tw = (h - 2) // BLOCK, (w - 2) // BLOCK
    blocks = grad.permute(0, 2, 3, 1).reshape(n, th, BLOCK, tw, BLOCK, -1)  # (N, th, 4, tw, 4, O)
    grad_products = _both_axes(at.t(), blocks.permute(2, 4, 0, 1, 3, 5)).view(TILE * TILE, n * th * tw, -1)
    grad_x = grad_weight = x.new_empty(0)
    if need_weight:
        grad_u = torch.bmm(grad_products.transpose(1, 2), _input_transform(x, bt))  # (36, O, C)
        grad_weight = _weight_gradient(grad_u, gg)
    if need_x:
        u = _weight_transform(weight, gg) if transformed is None else transformed
        grad_v = torch.bmm(grad_products, u)  # (36, P, C)
        del u, grad_products
        # einsum, not _both_axes: it writes the tiles in the (N, th, 6, tw, 6, C) order that the fold
        # reads; from _both_axes' (6, 6, N, th, tw, C) the fold ran 3× slower (tiles + fold 0.79 against 0.52 ms,
        # 128 channels, batch 4, AVX2 caps)
        tiles = torch.einsum("ia,jb,ijntwc->ntawbc", bt, bt, grad_v.view(TILE, TILE, n, th, tw, c))
        del grad_v
        grad_x = _fold_tiles(tiles).permute(0, 3, 1, 2)
    return grad_x, grad_weight


@_backward.register_fake
def _backward_shapes(grad, x, weight, transformed, need_x, need_weight):
    n, c, h, w = x.shape
    grad_x = x.new_empty(n, h, w, c).permute(0, 3, 1, 2) if need_x else x.new_empty(0)
    return grad_x, weight.new_empty(weight.shape) if need_weight else x.new_empty(0)


def _save(ctx, inputs, output) -> None:
    x, weight, bias, transformed = inputs
    ctx.save_for_backward(x, weight, transformed)  # a given transform is kept by its caller anyway
    ctx.has_bias = bias is not None


def _gradients(ctx, grad):
    x, weight, transformed = ctx.saved_tensors
    need_x, need_weight, need_bias, _ = ctx.needs_input_grad
    grad_x, grad_weight = _backward(grad, x, weight, transformed, need_x, need_weight)
    grad_bias = grad.sum((0, 2, 3)) if need_bias and ctx.has_bias else None
    return grad_x if need_x else None, grad_weight if need_weight else None, grad_bias, None


_forward.register_autograd(_gradients, setup_context=_save)


def winograd_weight(weight: torch.Tensor) -> torch.Tensor:
    """The Winograd transform G w Gᵀ of a 3×3 ``weight`` (O, C, 3, 3): (36, O, C), without autograd
    history. Computed once, it can be passed to :func:`winograd_conv3x3` for every call until the
    weight changes (``PaddedConv2d`` does: a CycleGAN step calls each generator three times)."""
    if weight.shape[-2:] != (3, 3):
        raise ValueError(f"winograd_weight: needs a 3×3 kernel; got weight {tuple(weight.shape)}")
    with torch.no_grad():
        return _weight_transform(weight, _matrices(weight.device, weight.dtype)[1])


def winograd_conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                     transformed: torch.Tensor | None = None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias)`` for a 3×3 kernel, stride 1, no padding (pad ``x`` first), by
    Winograd F(4×4, 3×3): ``x`` (N, C, H, W) with H − 2 and W − 2 multiples of 4, ``weight``
    (O, C, 3, 3), both of one floating dtype (genlab calls it for fp32) → (N, O, H − 2, W − 2),
    channels-last. Channels-last ``x`` is read without a copy. ``transformed``: the current weight's
    :func:`winograd_weight`, if the caller keeps it (else it is computed, and again in the backward);
    gradients still reach ``weight``."""
    if weight.shape[-2:] != (3, 3) or (x.shape[-2] - 2) % BLOCK or (x.shape[-1] - 2) % BLOCK:
        raise ValueError(f"winograd_conv3x3: needs a 3×3 kernel and an input whose height and width are 2 more "
                         f"than a multiple of {BLOCK}; got input {tuple(x.shape)}, weight {tuple(weight.shape)}")
    if transformed is not None and transformed.shape != (TILE * TILE, *weight.shape[:2]):
        raise ValueError(f"winograd_conv3x3: transformed must be winograd_weight(weight), shape "
                         f"{(TILE * TILE, *weight.shape[:2])}; got {tuple(transformed.shape)}")
    return _forward(x, weight, bias, transformed)
