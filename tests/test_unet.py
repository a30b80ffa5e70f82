"""Does each Part B op, block and UNet have the shapes, parameters and data flow of spec §3.1?"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from reference.unet import (
    ClassConditionalUNet,
    Concat,
    Conv,
    ConvBlock,
    DownBlock,
    DownConv,
    FCBlock,
    Flatten,
    TimeConditionalUNet,
    Unflatten,
    UnconditionalUNet,
    UpBlock,
    UpConv,
    eval_mode,
)

D = 8  # small width for fast tests


@pytest.fixture(autouse=True)
def one_thread():
    """Run on one thread: these models are tiny, and on a shared CPU more threads only spin (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    "op, in_shape, out_shape",
    [
        (Conv(3, 5), (2, 3, 28, 28), (2, 5, 28, 28)),
        (DownConv(3, 5), (2, 3, 28, 28), (2, 5, 14, 14)),
        (DownConv(3, 5), (2, 3, 14, 14), (2, 5, 7, 7)),
        (UpConv(3, 5), (2, 3, 7, 7), (2, 5, 14, 14)),
        (Flatten(), (2, 6, 7, 7), (2, 6, 1, 1)),
        (Unflatten(6), (2, 6, 1, 1), (2, 6, 7, 7)),
        (ConvBlock(3, 5), (2, 3, 14, 14), (2, 5, 14, 14)),
        (DownBlock(3, 5), (2, 3, 28, 28), (2, 5, 14, 14)),
        (UpBlock(3, 5), (2, 3, 14, 14), (2, 5, 28, 28)),
        (FCBlock(1, 6), (2, 1), (2, 6)),
        (FCBlock(10, 4), (2, 10), (2, 4)),
    ],
)
def test_what_shape_does_each_op_produce(op, in_shape, out_shape):
    assert op(torch.randn(in_shape)).shape == out_shape


def test_does_concat_stack_channels_in_order():
    x, y = torch.zeros(2, 3, 7, 7), torch.ones(2, 5, 7, 7)
    out = Concat()(x, y)
    assert out.shape == (2, 8, 7, 7)
    assert out[:, :3].eq(0).all() and out[:, 3:].eq(1).all()


def test_does_flatten_average_then_gelu():
    x = torch.randn(2, 4, 7, 7)
    assert torch.allclose(Flatten()(x), nn.functional.gelu(x.mean(dim=(2, 3), keepdim=True)), atol=1e-6)


def _unets(d=D):
    return [
        UnconditionalUNet(1, d),
        TimeConditionalUNet(1, d, "fm"),
        TimeConditionalUNet(1, d, "ddpm"),
        ClassConditionalUNet(1, 10, d, "fm"),
        ClassConditionalUNet(1, 10, d, "ddpm"),
    ]


def _call(unet, x, t=None, c=None):
    n = x.shape[0]
    t = torch.rand(n) if t is None else t
    c = torch.eye(10)[torch.arange(n) % 10] if c is None else c
    if isinstance(unet, ClassConditionalUNet):
        return unet(x, c, t)
    if isinstance(unet, TimeConditionalUNet):
        return unet(x, t)
    return unet(x)


@pytest.mark.parametrize("unet", _unets(), ids=lambda u: f"{type(u).__name__}")
def test_does_each_unet_map_digits_to_digits(unet):
    assert _call(unet, torch.rand(3, 1, 28, 28)).shape == (3, 1, 28, 28)


@pytest.mark.parametrize("unet", _unets(), ids=lambda u: f"{type(u).__name__}")
def test_do_wrong_image_sizes_raise(unet):
    with pytest.raises(ValueError, match="28"):
        _call(unet, torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="shape"):
        _call(unet, torch.rand(2, 3, 28, 28))


def test_do_bad_class_and_time_inputs_raise():
    unet = ClassConditionalUNet(1, 10, D)
    x = torch.rand(2, 1, 28, 28)
    with pytest.raises(ValueError, match="one-hot"):
        unet(x, torch.zeros(2, 9), torch.rand(2))
    with pytest.raises(ValueError, match="t must"):
        unet(x, torch.zeros(2, 10), torch.rand(3))
    with pytest.raises(ValueError, match="conditioning"):
        TimeConditionalUNet(1, D, "additive")


def _conv(i, o, k):  # weights + bias of a Conv2d / ConvTranspose2d
    return i * o * k * k + o


def _bn(c):  # BatchNorm2d weight + bias
    return 2 * c


def _conv_op(i, o):
    return _conv(i, o, 3) + _bn(o)


def _conv_block(i, o):
    return _conv_op(i, o) + _conv_op(o, o)


def _skeleton(c, d):
    """Parameters of the shared UNet skeleton, from the layer formulas of spec §3.1."""
    return (
        _conv_block(c, d)  # conv_in
        + _conv(d, d, 3) + _bn(d) + _conv_block(d, d)  # down1
        + _conv(d, 2 * d, 3) + _bn(2 * d) + _conv_block(2 * d, 2 * d)  # down2
        + _conv(2 * d, 2 * d, 7) + _bn(2 * d)  # unflatten
        + _conv(4 * d, d, 4) + _bn(d) + _conv_block(d, d)  # up1
        + _conv(2 * d, d, 4) + _bn(d) + _conv_block(d, d)  # up2
        + _conv_block(2 * d, d)  # conv_out
        + _conv(d, c, 3)  # head: plain conv
    )


def _fc(i, o):
    return (i * o + o) + (o * o + o)


def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_how_many_parameters_does_each_unet_have():
    assert _count(UnconditionalUNet(1, 128)) == _skeleton(1, 128)
    assert _count(TimeConditionalUNet(1, 64)) == _skeleton(1, 64) + _fc(1, 128) + _fc(1, 64)
    assert _count(ClassConditionalUNet(1, 10, 64)) == (
        _skeleton(1, 64) + _fc(1, 128) + _fc(1, 64) + _fc(10, 128) + _fc(10, 64)
    )


def test_are_the_submodule_names_stable():
    skeleton = {"conv_in", "down1", "down2", "unflatten", "up1", "up2", "conv_out", "head"}
    tops = lambda m: {k.split(".")[0] for k in m.state_dict()}  # noqa: E731
    assert tops(UnconditionalUNet(1, D)) == skeleton
    assert tops(TimeConditionalUNet(1, D)) == skeleton | {"fc1_t", "fc2_t"}
    assert tops(ClassConditionalUNet(1, 10, D)) == skeleton | {"fc1_t", "fc2_t", "fc1_c", "fc2_c"}
    keys = set(UnconditionalUNet(1, D).state_dict())
    assert {"conv_in.conv1.conv.weight", "conv_in.conv1.norm.running_mean", "down1.down.conv.weight",
            "down2.block.conv2.norm.bias", "up1.up.conv.weight", "unflatten.conv.weight", "head.bias"} <= keys
    assert set(TimeConditionalUNet(1, D).state_dict()) >= {"fc1_t.fc1.weight", "fc2_t.fc2.bias"}


def test_is_the_output_layer_a_plain_conv():
    unet = UnconditionalUNet(1, D)
    assert type(unet.head) is nn.Conv2d
    with torch.no_grad():
        unet.head.bias.fill_(-5.0)  # a BN+GELU head could never output below about −0.17
    assert _call(unet, torch.rand(2, 1, 28, 28)).mean() < -3


def _by_hand(unet, x, t=None, c=None):
    """A second formulation of the data flow of spec §3.1, written from the submodules."""
    n = x.shape[0]
    e1 = unet.conv_in(x)
    e2 = unet.down1(e1)
    e3 = unet.down2(e2)
    u0 = unet.unflatten(unet.flatten(e3))
    if t is not None:
        t1 = unet.fc1_t(t.reshape(n, 1)).reshape(n, -1, 1, 1)
        t2 = unet.fc2_t(t.reshape(n, 1)).reshape(n, -1, 1, 1)
    if c is not None:
        c1, c2 = unet.fc1_c(c).reshape(n, -1, 1, 1), unet.fc2_c(c).reshape(n, -1, 1, 1)
        u0 = c1 * u0 + t1
    elif t is not None:
        u0 = u0 * t1 if unet.conditioning == "fm" else u0 + t1
    u1 = unet.up1(torch.cat([e3, u0], 1))
    if c is not None:
        u1 = c2 * u1 + t2
    elif t is not None:
        u1 = u1 * t2 if unet.conditioning == "fm" else u1 + t2
    u2 = unet.up2(torch.cat([e2, u1], 1))
    return unet.head(unet.conv_out(torch.cat([e1, u2], 1)))


@pytest.mark.parametrize("unet", _unets(), ids=lambda u: f"{type(u).__name__}")
def test_does_each_unet_follow_the_spec_data_flow(unet):
    torch.manual_seed(0)
    x, t, c = torch.rand(4, 1, 28, 28), torch.rand(4), torch.eye(10)[[3, 1, 4, 1]]
    unet.eval()
    with torch.no_grad():
        got = _call(unet, x, t, c)
        want = _by_hand(
            unet, x,
            t if not isinstance(unet, UnconditionalUNet) else None,
            c if isinstance(unet, ClassConditionalUNet) else None,
        )
    torch.testing.assert_close(got, want)


def test_do_fm_and_ddpm_time_conditioning_differ():
    fm, ddpm = TimeConditionalUNet(1, D, "fm"), TimeConditionalUNet(1, D, "ddpm")
    ddpm.load_state_dict(fm.state_dict())  # same weights, only the injection rule differs
    x, t = torch.rand(2, 1, 28, 28), torch.rand(2)
    with eval_mode(fm), eval_mode(ddpm), torch.no_grad():
        assert not torch.allclose(fm(x, t), ddpm(x, t))


def test_are_time_shapes_n_and_n1_the_same():
    unet = TimeConditionalUNet(1, D).eval()
    x, t = torch.rand(3, 1, 28, 28), torch.rand(3)
    with torch.no_grad():
        torch.testing.assert_close(unet(x, t), unet(x, t[:, None]))


def test_does_a_zero_mask_drop_the_class():
    unet = ClassConditionalUNet(1, 10, D).eval()
    x, t, c = torch.rand(3, 1, 28, 28), torch.rand(3), torch.eye(10)[[2, 7, 9]]
    mask = torch.tensor([1.0, 0.0, 1.0])
    with torch.no_grad():
        masked = unet(x, c, t, mask=mask)
        torch.testing.assert_close(masked, unet(x, c * mask[:, None], t))
        assert not torch.allclose(masked[1], unet(x, c, t)[1])


def test_does_eval_mode_restore_training_mode():
    unet = UnconditionalUNet(1, D)
    with eval_mode(unet):
        assert not unet.training and not unet.conv_in.conv1.norm.training
    assert unet.training and unet.conv_in.conv1.norm.training
