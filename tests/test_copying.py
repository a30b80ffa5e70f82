"""fwd_kit.copying.fresh_copy: the same module as copy.deepcopy makes, sharing nothing a student's loop can change."""

import copy

import torch
import torch.nn as nn

from fwd_kit.checks.fixtures import _cached_unet, tiny_unet
from fwd_kit.copying import fresh_copy


class WithBuffers(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.register_buffer("scale", torch.tensor(2.0), persistent=False)

    def forward(self, x):
        return self.norm(self.conv(x)) * self.scale


def unet_output(unet, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, emb = torch.randn(2, 3, 32, 32, generator=g), torch.randn(2, 77, 32, generator=g)
    with torch.no_grad():
        return unet(x, 500, encoder_hidden_states=emb).sample


def test_a_copy_computes_what_deepcopy_computes_with_tensors_of_its_own():
    prototype = _cached_unet()
    ours, theirs = fresh_copy(prototype), copy.deepcopy(prototype)
    assert torch.equal(unet_output(ours), unet_output(theirs))
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(theirs_state)
    assert all(torch.equal(ours_state[k], theirs_state[k]) for k in ours_state)
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(ours.parameters(), prototype.parameters()))
    module = WithBuffers().train()
    module(torch.randn(2, 3, 8, 8))  # running statistics
    ours, theirs = fresh_copy(module), copy.deepcopy(module)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(ours.eval()(x), theirs.eval()(x))
    assert ours.scale.data_ptr() != module.scale.data_ptr() and ours.training is False and module.training is True


def test_what_a_loop_does_to_its_copy_leaves_the_original_as_it_was():
    prototype = _cached_unet()
    before, modes = unet_output(prototype), [m.training for m in prototype.modules()]
    unet = tiny_unet()
    calls = []
    unet.register_forward_hook(lambda *a: calls.append(1))
    unet.mid_block.register_forward_pre_hook(lambda *a: calls.append(2))
    with torch.no_grad():
        next(unet.parameters()).add_(1.0)
    unet.train()
    unet.conv_in.register_buffer("extra", torch.ones(1))
    unet.to(torch.float64)
    unet_output(unet.to(torch.float32))
    assert calls  # the hooks ran on the copy
    calls.clear()
    assert torch.equal(unet_output(prototype), before) and not calls  # and never on the original
    assert next(prototype.parameters()).dtype == torch.float32 and "extra" not in dict(prototype.named_buffers())
    assert [m.training for m in prototype.modules()] == modes and not tiny_unet().training


def test_no_container_of_any_submodule_is_shared():
    from diffusers.configuration_utils import FrozenDict  # the config: refuses changes, replaced when updated

    prototype = _cached_unet()
    copied = fresh_copy(prototype)
    shared = []
    for (name, ours), theirs in zip(copied.named_modules(), prototype.modules()):
        assert ours is not theirs, name
        for attribute, value in vars(theirs).items():
            if isinstance(value, (dict, set, list)) and not isinstance(value, FrozenDict):
                shared += [f"{name}.{attribute}"] if vars(ours)[attribute] is value else []
    assert shared == []


def test_tied_weights_stay_tied_as_with_deepcopy():
    shared = nn.Linear(4, 4)
    module = nn.Sequential(shared, nn.ReLU(), shared)
    module.extra = nn.Linear(4, 4)
    module.extra.weight = shared.weight
    ours, theirs = fresh_copy(module), copy.deepcopy(module)
    assert ours[0] is ours[2] and ours.extra.weight is ours[0].weight
    assert len(list(ours.parameters())) == len(list(theirs.parameters()))
    assert ours[0].weight is not shared.weight
