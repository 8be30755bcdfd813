"""CycleGAN networks (genlab.nn): shapes, value ranges, exact parameter counts, receptive fields, padding.

Parameter counts are taken on the meta device (no memory, no forward pass). They are Keras-style
totals, which here equal ``sum(p.numel())``: instance norm keeps no running statistics.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genlab.nn.init import init_normal_
from genlab.nn.layers import (
    InstanceNorm,
    KerasSameConvTranspose2d,
    KerasSamePad2d,
    NearestResizeConv,
    NearestUpsample2x,
    PaddedConv2d,
    conv2d,
    depth_to_space,
    polyphase_conv2d,
    reflect_pad2d,
    replicate_pad1,
    resize_conv2d,
    space_to_depth,
    up2d,
)
from genlab.nn.matmul_conv import matmul_conv2d
from genlab.nn.patchgan import PatchDiscriminator
from genlab.nn.resnet_gen import ResnetGenerator
from genlab.nn.unet import UNetGenerator


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def on_meta(build):
    with torch.device("meta"):
        return build()


def tiny_unet(**kw) -> UNetGenerator:
    return UNetGenerator(ngf=4, num_downs=3, **kw)


def tiny_resnet(**kw) -> ResnetGenerator:
    return ResnetGenerator(ngf=4, n_blocks=2, **kw)


# --- exact parameter counts -----------------------------------------------------------------------

def test_seed_patchgan_matches_the_seed_table_total():
    # seed report 000, question 2, table "Dx": "Total params: 2,766,529" at 256×256×3
    assert n_params(on_meta(PatchDiscriminator.seed)) == 2_766_529


def test_seed_patchgan_rows_match_the_table():
    d = on_meta(PatchDiscriminator.seed)
    rows = [n_params(m) for m in d.net if n_params(m)]
    # Conv2D 3136, 131200, IN 256, Conv2D 524544, IN 512, Conv2D 2097664, IN 1024, Conv2D 8193
    assert rows == [3136, 131_200, 256, 524_544, 512, 2_097_664, 1024, 8193]


def test_paper_patchgan_70x70_count():
    # junyanz NLayerDiscriminator(n_layers=3), InstanceNorm2d(affine=False), conv biases
    assert n_params(on_meta(PatchDiscriminator.paper)) == 2_764_737
    assert n_params(on_meta(PatchDiscriminator.seed)) - n_params(on_meta(PatchDiscriminator.paper)) == 2 * (128 + 256 + 512)


def test_seed_unet_count():
    # The seed has no generator table (prose only, §2.3.1); 30,618,691 is the structure it describes
    # (see UNetGenerator.seed), counted Keras-style: encoder 10,996,096 + decoder 19,622,595.
    g = on_meta(UNetGenerator.seed)
    assert n_params(g) == 30_618_691
    assert sum(n_params(b) for b in g.encoder) == 10_996_096
    assert sum(n_params(b) for b in g.decoder) + n_params(g.output) == 19_622_595
    assert n_params(on_meta(lambda: UNetGenerator.seed(1, 1))) == 30_615_233
    assert g.stride_multiple == 256


def test_unet_256_count():
    # pix2pix/CycleGAN unet_256 at ngf 64 with affine-free instance norm and conv biases
    g = on_meta(lambda: UNetGenerator(image_size=256))
    assert g.num_downs == 8 and g.stride_multiple == 256
    assert n_params(g) == 54_409_603
    assert n_params(on_meta(lambda: UNetGenerator(image_size=256, norm="batch"))) == 54_413_955


def test_resnet_counts():
    # junyanz resnet_9blocks / resnet_6blocks, ngf 64, InstanceNorm2d(affine=False), conv biases
    assert n_params(on_meta(ResnetGenerator)) == 11_378_179
    assert n_params(on_meta(lambda: ResnetGenerator(n_blocks=6))) == 7_837_699
    assert n_params(on_meta(lambda: ResnetGenerator(upsample="resize"))) == 11_378_179  # 3×3 conv = 3×3 deconv


# --- PatchGAN geometry ----------------------------------------------------------------------------

def test_patchgan_map_at_256():
    x = torch.empty(2, 3, 256, 256, device="meta")
    for build, side, rf in ((PatchDiscriminator.paper, 30, 70), (PatchDiscriminator.seed, 16, 94)):
        d = on_meta(build)
        assert d(x).shape == (2, 1, side, side)
        assert d.output_size(256, 256) == (side, side)
        assert d.receptive_field == rf


@pytest.mark.parametrize(("kw", "rf"), [({}, 70), ({"last_stride": 2, "padding": "keras"}, 94)])
def test_patchgan_receptive_field_from_gradients(kw, rf):
    torch.manual_seed(0)
    d = PatchDiscriminator(1, ndf=2, norm="none", **kw).double()  # norm couples all pixels: off here
    x = torch.randn(1, 1, 128, 128, dtype=torch.float64, requires_grad=True)
    y = d(x)
    h, w = y.shape[-2:]
    y[0, 0, h // 2, w // 2].backward()
    rows = x.grad[0, 0].abs().sum(1).nonzero().flatten()
    cols = x.grad[0, 0].abs().sum(0).nonzero().flatten()
    assert rows[0] > 0 and rows[-1] < 127  # not clipped by the border
    assert rows[-1] - rows[0] + 1 == rf and cols[-1] - cols[0] + 1 == rf


def test_patchgan_shapes_small_and_non_square():
    for channels, d in ((3, PatchDiscriminator.paper(3, ndf=4)), (3, PatchDiscriminator.seed(3)),
                        (1, PatchDiscriminator(1, ndf=4, norm="batch"))):
        assert d(torch.randn(2, channels, 32, 64)).shape == (2, 1, *d.output_size(32, 64))
    assert PatchDiscriminator.seed().output_size(32, 64) == (2, 4)
    assert PatchDiscriminator.paper(ndf=4).output_size(32, 64) == (2, 6)


# --- generators: shapes, range, both up-sampling modes, grayscale ---------------------------------

@pytest.mark.parametrize("upsample", ["deconv", "resize"])
@pytest.mark.parametrize("size", [(32, 32), (32, 64)])
def test_generator_shapes_and_range(upsample, size):
    torch.manual_seed(0)
    for g in (tiny_unet(upsample=upsample), tiny_resnet(upsample=upsample), tiny_unet(upsample=upsample, norm="batch", dropout=0.5)):
        x = torch.rand(2, 3, *size) * 2 - 1
        y = g(x)
        assert y.shape == (2, 3, *size)
        assert y.abs().max() <= 1.0


def test_seed_unet_forward_256():
    g = UNetGenerator.seed()
    with torch.no_grad():
        y = g(torch.rand(1, 3, 256, 256) * 2 - 1)  # batch 1, as the seed trains: 1×1 instance norm must work
        assert y.shape == (1, 3, 256, 256) and y.abs().max() <= 1.0
        # the seed's innermost instance norm sees a 1×1 map and outputs β: the bottleneck ignores the input
        a, b = torch.rand(2, 1, 3, 256, 256)
        for block in g.encoder:
            a, b = block(a), block(b)
        assert a.shape[-2:] == (1, 1) and torch.equal(a, b)


def test_grayscale_in_and_out():
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    for g in (tiny_unet(in_channels=1, out_channels=1), tiny_resnet(in_channels=1, out_channels=1)):
        assert g(x).shape == (2, 1, 32, 32)
    assert PatchDiscriminator.paper(1, ndf=4)(x).shape == (2, 1, 2, 2)
    assert UNetGenerator(1, 3, ngf=4, num_downs=2)(x).shape == (2, 3, 32, 32)


# --- size checks ------------------------------------------------------------------------------------

def test_stride_multiple():
    assert tiny_unet().stride_multiple == 8
    assert UNetGenerator(image_size=96, ngf=4).num_downs == 5  # 96 = 3·2^5
    assert UNetGenerator(image_size=512, ngf=4).num_downs == 8
    assert ResnetGenerator.stride_multiple == 4 and tiny_resnet().stride_multiple == 4


def test_unet_dropout_on_the_innermost_decoder_blocks():
    g = UNetGenerator(ngf=4, num_downs=5, dropout=0.5)
    assert [any(isinstance(m, nn.Dropout) for m in block) for block in g.decoder] == [True, True, True, False]
    assert not any(isinstance(m, nn.Dropout) for m in tiny_unet().modules())


def test_non_multiple_size_raises():
    with pytest.raises(ValueError, match=r"30×32.*multiple of 8"):
        tiny_unet()(torch.zeros(1, 3, 30, 32))
    with pytest.raises(ValueError, match=r"34×36.*multiple of 4"):
        tiny_resnet()(torch.zeros(1, 3, 34, 36))
    with pytest.raises(ValueError, match="multiple of 2\\*\\*num_downs = 8"):
        UNetGenerator(image_size=36, num_downs=3)
    with pytest.raises(ValueError, match="upsample"):
        UNetGenerator(upsample="pixelshuffle")


# --- gradients, init, padding semantics -----------------------------------------------------------

def test_gradients_flow():
    torch.manual_seed(0)
    g, d = tiny_unet(upsample="resize"), PatchDiscriminator(3, ndf=4)
    r = tiny_resnet()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    (d(g(x)).mean() + r(x).square().mean()).backward()
    for net in (g, d, r):
        for name, p in net.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert g.encoder[0][0].weight.grad.abs().sum() > 0 and r.net[0].weight.grad.abs().sum() > 0


def test_init_normal():
    torch.manual_seed(0)
    net = init_normal_(nn.Sequential(nn.Conv2d(64, 64, 3), nn.ConvTranspose2d(64, 64, 3), nn.Linear(256, 256),
                                     nn.BatchNorm2d(512), InstanceNorm(512, affine=True), InstanceNorm(8)), std=0.02)
    for layer in net[:3]:
        assert abs(layer.weight.std().item() - 0.02) < 1e-3 and abs(layer.weight.mean().item()) < 1e-3
        assert not layer.bias.any()
    for layer in net[3:5]:
        assert abs(layer.weight.mean().item() - 1) < 5e-3 and abs(layer.weight.std().item() - 0.02) < 5e-3
        assert not layer.bias.any()


def test_instance_norm_matches_torch_and_handles_1x1():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 6, 7)
    assert torch.allclose(InstanceNorm(5)(x), nn.InstanceNorm2d(5)(x), atol=1e-5)
    norm = InstanceNorm(5, affine=True)
    nn.init.normal_(norm.bias)
    assert torch.equal(norm(torch.randn(1, 5, 1, 1)), norm.bias.detach().view(1, 5, 1, 1))  # x − mean = 0 → β
    assert not InstanceNorm(5)(torch.randn(1, 5, 1, 1)).any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("contiguous_statistics", [True, False])
def test_instance_norm_of_channels_last_maps_equals_torch_and_keeps_layout_and_dtype(monkeypatch, contiguous_statistics,
                                                                                     dtype):
    # eager, channels-last maps are normalised in the contiguous layout; switched off, in their own
    monkeypatch.setattr(InstanceNorm, "contiguous_statistics", contiguous_statistics)
    torch.manual_seed(0)
    x = torch.randn(3, 8, 6, 5).to(dtype).contiguous(memory_format=torch.channels_last).requires_grad_()
    weights = torch.randn(3, 8, 6, 5)
    norm = InstanceNorm(8, affine=True)
    nn.init.normal_(norm.weight)
    reference = nn.InstanceNorm2d(8, affine=True)
    reference.load_state_dict(norm.state_dict())
    y = norm(x)
    assert y.dtype == dtype and y.is_contiguous(memory_format=torch.channels_last)
    x32 = x.detach().float().contiguous().requires_grad_()
    expected = reference(x32)
    assert torch.allclose(y.float(), expected, atol=1e-5 if dtype == torch.float32 else 2e-2)
    grads = torch.autograd.grad((y.float() * weights).sum(), [x, norm.weight])
    grads_expected = torch.autograd.grad((expected * weights).sum(), [x32, reference.weight])
    tolerance = 1e-4 if dtype == torch.float32 else 5e-2
    for grad, grad_expected in zip(grads, grads_expected, strict=True):
        assert torch.allclose(grad.float(), grad_expected, atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_nearest_upsample_compiled_equals_pytorchs_nearest(memory_format):
    # compiled, NearestUpsample2x copies pixels with expand + reshape instead of upsample_nearest2d
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64).to(memory_format=memory_format).requires_grad_()
    weights = torch.randn(2, 3, 10, 14, dtype=torch.float64)
    expected = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
    (grad_expected,) = torch.autograd.grad((expected * weights).sum(), x)
    for up in (NearestUpsample2x(), torch.compile(NearestUpsample2x(), fullgraph=True)):
        y = up(x)
        assert torch.equal(y, expected) and y.is_contiguous(memory_format=memory_format)
        (grad,) = torch.autograd.grad((y * weights).sum(), x)
        assert torch.allclose(grad, grad_expected, rtol=0, atol=1e-12)
    assert isinstance(up2d(4, 2, 3, mode="resize")[0], NearestUpsample2x)


def test_reflect_pad2d_equals_pytorchs_reflection_padding():
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    for pad in [(1, 1, 1, 1), (3, 3, 3, 3), (0, 2, 1, 0), (6, 0, 0, 4)]:
        assert torch.equal(reflect_pad2d(x, pad), nn.functional.pad(x, pad, mode="reflect")), pad


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("in_channels, out_channels, size, padding_mode", [
    (3, 8, (9, 11), "reflect"),  # reflected borders from flipped slices
    (3, 4, (9, 11), "reflect"),  # thin output, odd size: no polyphase form
    (5, 3, (8, 10), "reflect"),  # thin output, even size: reflected borders, then polyphase_conv2d
    (5, 3, (6, 4), "zeros"),     # polyphase_conv2d after zero padding
])
def test_padded_conv_compiled_equals_pytorchs_conv(memory_format, in_channels, out_channels, size, padding_mode):
    # compiled, PaddedConv2d swaps in its compile-time forms; eager it is nn.Conv2d
    torch.manual_seed(0)
    conv = PaddedConv2d(in_channels, out_channels, 7, 1, 3, padding_mode=padding_mode).double()
    reference = nn.Conv2d(in_channels, out_channels, 7, 1, 3, padding_mode=padding_mode).double()
    reference.load_state_dict(conv.state_dict())
    x = torch.randn(2, in_channels, *size, dtype=torch.float64).to(memory_format=memory_format).requires_grad_()
    weights = torch.randn(2, out_channels, *size, dtype=torch.float64)
    expected = reference(x)
    grads_expected = torch.autograd.grad((expected * weights).sum(), (x, reference.weight, reference.bias))
    for layer in (conv, torch.compile(conv, fullgraph=True, dynamic=False)):  # as compile_networks
        y = layer(x)
        assert torch.allclose(y, expected, rtol=0, atol=1e-12)
        grads = torch.autograd.grad((y * weights).sum(), (x, conv.weight, conv.bias))
        assert all(torch.allclose(g, e, rtol=0, atol=1e-10) for g, e in zip(grads, grads_expected))
    assert conv._thin_output() == (out_channels < 8)
    resnet = ResnetGenerator(ngf=4, n_blocks=1)
    assert isinstance(resnet.net[0], PaddedConv2d) and resnet.net[-2]._thin_output()


def _conv_operands(x_shape, w_shape, bias: bool, memory_format=torch.contiguous_format):
    """Seeded fp64 input, weight and (optional) bias that need gradients, and the tuple of those present."""
    torch.manual_seed(0)
    x = torch.randn(*x_shape, dtype=torch.float64).to(memory_format=memory_format).requires_grad_()
    w = torch.randn(*w_shape, dtype=torch.float64).to(memory_format=memory_format).requires_grad_()
    b = torch.randn(w_shape[0], dtype=torch.float64, requires_grad=True) if bias else None
    return x, w, b, ((x, w, b) if bias else (x, w))


def _assert_equal_values_and_grads(y, expected, inputs):
    """``y`` equals ``expected`` (fp64: to 1e-12), and so do the gradients of a random weighting of each
    with respect to ``inputs`` (to 1e-10); returns ``y``'s gradients."""
    assert y.shape == expected.shape and torch.allclose(y, expected, rtol=0, atol=1e-12)
    weights = torch.randn_like(expected)
    grads = torch.autograd.grad((y * weights).sum(), inputs)
    grads_expected = torch.autograd.grad((expected * weights).sum(), inputs)
    assert all(torch.allclose(g, e, rtol=0, atol=1e-10) for g, e in zip(grads, grads_expected))
    return grads


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("k, stride, size, bias", [
    (4, 2, (4, 4), True),   # a U-Net's innermost layer, 2×2 → 1×1 after padding
    (4, 2, (6, 6), False),  # 4×4 → 2×2 after padding: overlapping windows
    (3, 1, (4, 5), True),   # a resize-conv block's 3×3 on a 2×2 map, padded; non-square output
    (4, 1, (4, 4), True),   # one window: the whole map
])
def test_matmul_conv_equals_conv(memory_format, k, stride, size, bias):
    x, w, b, inputs = _conv_operands((2, 5, *size), (7, 5, k, k), bias, memory_format)
    grads = _assert_equal_values_and_grads(matmul_conv2d(x, w, b, (stride, stride)),
                                           nn.functional.conv2d(x, w, b, stride), inputs)
    if memory_format == torch.channels_last:  # the weight gradient comes back in the weight's own layout
        assert grads[1].is_contiguous(memory_format=torch.channels_last)


def test_unet_innermost_layers_compiled_equal_eager():
    # a 32-px U-Net at batch 2 (32 → 16 → 8 → 4 → 2 → 1): compiled, the convolutions with at most 128
    # output pixels in the batch (8×8 and below) run as matmul_conv2d, the larger ones as convolutions
    torch.manual_seed(0)
    # (norm="none": instance norm computes its statistics in fp32, which would blur an fp64 comparison)
    net = UNetGenerator(ngf=4, image_size=32, upsample="resize", norm="none").double().to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64).to(memory_format=torch.channels_last)
    assert not net.encoder[0][0]._tiny_output(x)  # 16×16 outputs: 512 rows
    assert net.encoder[1][0]._tiny_output(torch.zeros(2, 4, 16, 16))  # 8×8 outputs: 128 rows
    expected = net(x)
    weights = torch.randn_like(expected)
    params = [p for p in net.parameters()]
    grads_expected = torch.autograd.grad((expected * weights).sum(), params)
    y = torch.compile(net, fullgraph=True, dynamic=False)(x)
    assert torch.allclose(y, expected, rtol=0, atol=1e-12)
    grads = torch.autograd.grad((y * weights).sum(), params)
    assert all(torch.allclose(g, e, rtol=0, atol=1e-10) for g, e in zip(grads, grads_expected))


@pytest.mark.parametrize("k, size, bias", [(5, (8, 10), True), (7, (6, 4), False), (9, (2, 2), True)])
def test_polyphase_conv_equals_conv(k, size, bias):
    x, w, b, inputs = _conv_operands((2, 5, size[0] + k - 1, size[1] + k - 1), (3, 5, k, k), bias)
    _assert_equal_values_and_grads(polyphase_conv2d(x, w, b), nn.functional.conv2d(x, w, b), inputs)


@pytest.mark.parametrize("out_channels", [3, 9])  # one convolution to 4 phases, or four 2×2 convolutions
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
@pytest.mark.parametrize("bias", [True, False])
def test_resize_conv_equals_a_convolution_of_the_upsampled_map(out_channels, padding_mode, bias):
    x, w, b, inputs = _conv_operands((2, 5, 6, 7), (out_channels, 5, 3, 3), bias)
    up = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
    expected = nn.functional.conv2d(nn.functional.pad(up, (1, 1, 1, 1), mode="reflect" if padding_mode == "reflect" else "constant"), w, b)
    y = resize_conv2d(x, w, b, padding_mode)
    assert y.shape == (2, out_channels, 12, 14)
    _assert_equal_values_and_grads(y, expected, inputs)


@pytest.mark.parametrize("size", [(16, 10), (4, 4)])  # the compile-time form from 256 input pixels on; below, the two layers
def test_resize_conv_block_compiled_equals_eager_and_keeps_its_keys(size):
    torch.manual_seed(0)
    block = up2d(6, 9, 3, mode="resize", padding_mode="reflect").double()
    assert isinstance(block, NearestResizeConv) and list(block.state_dict()) == ["1.weight", "1.bias"]
    x = torch.randn(2, 6, *size, dtype=torch.float64).to(memory_format=torch.channels_last).requires_grad_()
    expected = block(x)  # eager: NearestUpsample2x, then PaddedConv2d
    weights = torch.randn_like(expected)
    grads_expected = torch.autograd.grad((expected * weights).sum(), (x, block[1].weight))
    y = torch.compile(block, fullgraph=True, dynamic=False)(x)
    assert torch.allclose(y, expected, rtol=0, atol=1e-12)
    grads = torch.autograd.grad((y * weights).sum(), (x, block[1].weight))
    assert all(torch.allclose(g, e, rtol=0, atol=1e-10) for g, e in zip(grads, grads_expected))
    assert type(up2d(6, 9, 3, mode="resize", resize_mode="bilinear")) is nn.Sequential  # only nearest is fused


def test_replicate_pad1_equals_pytorchs_replication_padding():
    x = torch.randn(2, 3, 4, 5)
    assert torch.equal(replicate_pad1(x), nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"))


def test_space_to_depth_is_pixel_unshuffle_in_phase_major_order():
    x = torch.randn(2, 3, 4, 6)
    s = space_to_depth(x)
    # pixel_unshuffle orders channels (c, phase); space_to_depth orders them (phase, c)
    assert torch.equal(s, nn.functional.pixel_unshuffle(x, 2).view(2, 3, 4, 2, 3).transpose(1, 2).reshape(2, 12, 2, 3))
    assert s.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(depth_to_space(s), x)


@pytest.mark.parametrize("k", [3, 4, 5])
def test_keras_same_transposed_conv_is_the_adjoint_of_keras_same_conv(k):
    # TF's conv2d_transpose is the gradient of conv2d: <conv(x), y> = <convT(y), x> with shared weights
    torch.manual_seed(0)
    conv = nn.Sequential(KerasSamePad2d(k, 2), nn.Conv2d(3, 4, k, 2, bias=False)).double()
    convt = KerasSameConvTranspose2d(4, 3, k, 2, bias=False).double()
    convt.weight.data.copy_(conv[1].weight.data)
    x, y = torch.randn(2, 3, 8, 12, dtype=torch.float64), torch.randn(2, 4, 4, 6, dtype=torch.float64)
    assert conv(x).shape == y.shape and convt(y).shape == x.shape
    assert torch.allclose((conv(x) * y).sum(), (convt(y) * x).sum())


def test_keras_same_padding_puts_the_odd_pixel_bottom_right():
    assert KerasSamePad2d(3, 2)._pads(256) == (0, 1)
    assert KerasSamePad2d(4, 2)._pads(256) == (1, 1)
    assert KerasSamePad2d(4, 1)._pads(16) == (1, 2)
    for k in (3, 4):
        assert conv2d(2, 2, k, 2)(torch.zeros(1, 2, 8, 6)).shape[-2:] == (4, 3)
        assert up2d(2, 2, k)(torch.zeros(1, 2, 4, 3)).shape[-2:] == (8, 6)
        assert up2d(2, 2, k, mode="resize", resize_mode="bilinear")(torch.zeros(1, 2, 4, 3)).shape[-2:] == (8, 6)
