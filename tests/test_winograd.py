"""Winograd F(4×4, 3×3) convolutions (genlab.nn.winograd) and PaddedConv2d's Winograd form."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import genlab.nn.layers as layers
from genlab.nn.layers import PaddedConv2d
from genlab.nn.winograd import winograd_conv3x3, winograd_weight

CL = torch.channels_last


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("shape", [(2, 5, 7, 6, 10), (3, 16, 8, 14, 6), (1, 64, 64, 18, 18)])
@pytest.mark.parametrize("layout", [CL, torch.contiguous_format])
def test_values_and_gradients_match_conv2d(shape, layout):
    n, c, o, h, w = shape
    torch.manual_seed(0)
    x = torch.randn(n, c, h, w).to(memory_format=layout).requires_grad_()
    weight, bias = torch.randn(o, c, 3, 3, requires_grad=True), torch.randn(o, requires_grad=True)
    grad = torch.randn(n, o, h - 2, w - 2)
    expected = F.conv2d(x, weight, bias)
    expected_grads = torch.autograd.grad(expected, (x, weight, bias), grad)
    out = winograd_conv3x3(x, weight, bias)
    grads = torch.autograd.grad(out, (x, weight, bias), grad)
    assert out.shape == expected.shape and out.is_contiguous(memory_format=CL)
    assert relative_error(out, expected) < 1e-4
    for got, want in zip(grads, expected_grads):
        assert got.shape == want.shape and relative_error(got, want) < 1e-4
    assert grads[0].is_contiguous(memory_format=CL)


def test_backward_is_exact_in_float64():
    """The hand-written backward against autograd's numerical derivative (float64, no bias and with)."""
    torch.manual_seed(0)
    x = torch.randn(1, 2, 6, 10, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(winograd_conv3x3, (x, weight, bias))
    assert torch.autograd.gradcheck(winograd_conv3x3, (x, weight))


def test_keeps_only_input_and_weight_for_backward():
    """Like nn.Conv2d it saves x and the weight (the transforms are recomputed), not ~4.5 output-sized maps;
    a weight transform passed in is kept (its caller holds it anyway) instead of being recomputed."""
    x = torch.randn(2, 8, 10, 10).to(memory_format=CL).requires_grad_()
    weight = torch.randn(8, 8, 3, 3, requires_grad=True)
    x_saved, weight_saved, transform_saved = winograd_conv3x3(x, weight, torch.zeros(8)).grad_fn.saved_tensors
    assert (x_saved.shape, weight_saved.shape, transform_saved) == (x.shape, weight.shape, None)
    transformed = winograd_weight(weight)
    out = winograd_conv3x3(x, weight, None, transformed)
    assert out.grad_fn.saved_tensors[2] is transformed
    grads = torch.autograd.grad(out.square().sum(), (x, weight))
    expected = torch.autograd.grad(F.conv2d(x, weight).square().sum(), (x, weight))
    assert all(relative_error(g, e) < 1e-4 for g, e in zip(grads, expected))


def test_refuses_a_transform_of_another_weight():
    weight = torch.randn(8, 4, 3, 3)
    with pytest.raises(ValueError, match=r"transformed must be winograd_weight\(weight\), shape \(36, 8, 4\)"):
        winograd_conv3x3(torch.randn(1, 4, 6, 6), weight, None, winograd_weight(weight.transpose(0, 1)))


def test_gradient_only_for_what_needs_one():
    x = torch.randn(1, 4, 6, 6)
    weight = torch.randn(4, 4, 3, 3, requires_grad=True)
    (grad_w,) = torch.autograd.grad(winograd_conv3x3(x, weight).sum(), weight)
    assert torch.allclose(grad_w, torch.autograd.grad(F.conv2d(x, weight).sum(), weight)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("x_shape, w_shape", [((1, 4, 7, 6), (4, 4, 3, 3)), ((1, 4, 6, 6), (4, 4, 5, 5))])
def test_refuses_what_it_cannot_compute(x_shape, w_shape):
    with pytest.raises(ValueError, match=r"3×3 kernel.*multiple of 4"):
        winograd_conv3x3(torch.randn(x_shape), torch.randn(w_shape))


def counted(monkeypatch, name: str) -> list:
    """Replaces ``genlab.nn.layers.<name>`` by a wrapper that records its first argument's shape per call."""
    made = []
    real = getattr(layers, name)

    def counting(*args):
        made.append(args[0].shape)
        return real(*args)

    monkeypatch.setattr(layers, name, counting)
    return made


@pytest.fixture
def calls(monkeypatch):
    """PaddedConv2d's calls of the Winograd form (the padded input's shape)."""
    return counted(monkeypatch, "winograd_conv3x3")


@pytest.mark.parametrize("padding_mode", ["reflect", "zeros"])
def test_padded_conv_uses_winograd_for_eager_fp32_channels_last_maps(calls, padding_mode):
    torch.manual_seed(0)
    conv = PaddedConv2d(128, 128, 3, 1, 1, padding_mode=padding_mode).to(memory_format=CL)
    reference = torch.nn.Conv2d(128, 128, 3, 1, 1, padding_mode=padding_mode)
    reference.load_state_dict(conv.state_dict())
    x = torch.randn(4, 128, 8, 32).to(memory_format=CL)  # 1,024 output pixels
    out = conv(x)
    assert calls == [(4, 128, 10, 34)]  # padded first
    assert out.is_contiguous(memory_format=CL) and relative_error(out, reference(x)) < 1e-4


@pytest.mark.parametrize("case", ["eligible", "switched off", "few channels", "size", "few pixels", "contiguous",
                                  "bf16 autocast", "stride"])
def test_padded_conv_keeps_conv2d_otherwise(calls, case):
    """Each case changes one thing of an eligible layer ("eligible": the control, which uses the form)."""
    channels, size, stride = (32 if case == "few channels" else 128), (10 if case == "size" else 8), (2 if case == "stride" else 1)
    conv = PaddedConv2d(channels, channels, 3, stride, 1, padding_mode="reflect")
    if case == "switched off":
        conv.winograd = False
    x = torch.randn(4 if case == "few pixels" else 16, channels, size, size)  # 16 × 8 × 8 = 1,024 output pixels
    if case != "contiguous":
        x = x.to(memory_format=CL)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=case == "bf16 autocast"):
        out = conv(x)
    if case == "eligible":
        assert len(calls) == 1
        return
    assert calls == []
    if case == "bf16 autocast":
        assert out.dtype == torch.bfloat16  # oneDNN's bf16 convolution
    else:
        assert torch.equal(out, F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), conv.weight, conv.bias, stride))


def test_direct_convolutions_turns_the_form_off_inside_the_block_only(calls):
    conv = PaddedConv2d(128, 128, 3, 1, 1).to(memory_format=CL)
    x = torch.randn(16, 128, 8, 8).to(memory_format=CL)
    with pytest.raises(RuntimeError, match="inside"), layers.direct_convolutions():
        assert torch.equal(conv(x), F.conv2d(x, conv.weight, conv.bias, padding=1))
        raise RuntimeError("inside")
    assert calls == [] and PaddedConv2d.winograd
    conv(x)
    assert len(calls) == 1


def test_compiled_padded_conv_uses_winograd_too(calls):
    torch.manual_seed(0)
    conv = PaddedConv2d(128, 128, 3, 1, 1, padding_mode="reflect").to(memory_format=CL)
    x = torch.randn(16, 128, 8, 8).to(memory_format=CL).requires_grad_()
    eager = conv(x)
    eager_grads = torch.autograd.grad(eager.square().sum(), (x, conv.weight))
    compiled = torch.compile(conv, dynamic=False, backend="aot_eager")(x)  # the compile-time branch, no codegen
    compiled_grads = torch.autograd.grad(compiled.square().sum(), (x, conv.weight))
    assert len(calls) == 2  # eager, then traced once
    assert relative_error(compiled, eager) < 1e-5
    for got, want in zip(compiled_grads, eager_grads):
        assert relative_error(got, want) < 1e-4


@pytest.fixture
def transforms(monkeypatch):
    """PaddedConv2d's weight transforms (the weight's shape)."""
    return counted(monkeypatch, "winograd_weight")


@pytest.mark.parametrize("fused", [True, False])
def test_reuse_block_transforms_each_weight_once_per_optimizer_step(transforms, fused):
    """Inside reuse_winograd_weights: one transform for several calls and their backward, a new one after
    any optimizer step (fused Adam does not count up the weight's version), and the same values as
    without the block, bit for bit; after the block nothing is kept."""
    torch.manual_seed(0)
    conv = PaddedConv2d(128, 128, 3, 1, 1).to(memory_format=CL)
    twin = PaddedConv2d(128, 128, 3, 1, 1).to(memory_format=CL)
    twin.load_state_dict(conv.state_dict())
    x = torch.randn(16, 128, 8, 8).to(memory_format=CL)  # 1,024 output pixels: eligible

    def steps(layer, optimizer):
        outs = []
        for _ in range(2):  # e.g. a GAN's two generator steps: call, call, step, then again
            out = layer(x) + layer(x.flip(-1))
            outs.append(out.detach())
            optimizer.zero_grad()
            out.square().mean().backward()
            optimizer.step()
        return outs

    with layers.reuse_winograd_weights():
        reused = steps(conv, torch.optim.Adam(conv.parameters(), lr=0.1, fused=fused))
    assert len(transforms) == 2 and conv._winograd_cache is None
    plain = steps(twin, torch.optim.Adam(twin.parameters(), lr=0.1, fused=fused))
    assert len(transforms) == 2  # outside the block each call transforms inside winograd_conv3x3
    assert all(torch.equal(a, b) for a, b in zip(reused, plain)) and torch.equal(conv.weight, twin.weight)


def test_reuse_block_sees_in_place_writes_and_nesting(transforms):
    conv = PaddedConv2d(128, 128, 3, 1, 1).to(memory_format=CL)
    x = torch.randn(16, 128, 8, 8).to(memory_format=CL)
    with layers.reuse_winograd_weights():
        conv(x)
        with layers.reuse_winograd_weights():
            conv(x)
        conv(x)  # the inner block's end drops nothing
        assert len(transforms) == 1
        conv.load_state_dict({name: torch.randn_like(value) for name, value in conv.state_dict().items()})
        assert relative_error(conv(x), F.conv2d(x, conv.weight, conv.bias, padding=1)) < 1e-4
    assert len(transforms) == 2


def test_compiled_graph_calls_the_operator_instead_of_tracing_it():
    """torch.compile sees one genlab::winograd_conv3x3 call, not its transforms: traced, they made
    compiling the ResNet generator ten times slower (BENCHMARKS.md)."""
    graphs = []

    def recording(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    conv = PaddedConv2d(128, 128, 3, 1, 1, padding_mode="reflect").to(memory_format=CL)
    x = torch.randn(16, 128, 8, 8).to(memory_format=CL)
    torch._dynamo.reset()
    out = torch.compile(conv, dynamic=False, backend=recording)(x)
    targets = [str(node.target) for gm in graphs for node in gm.graph.nodes if node.op == "call_function"]
    assert "genlab.winograd_conv3x3.default" in targets
    assert not any("bmm" in t or "einsum" in t or "matmul" in t for t in targets)
    assert relative_error(out, F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), conv.weight, conv.bias)) < 1e-4
