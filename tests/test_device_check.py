"""The device check (``fwd_kit.checks.compare.assert_follows_device``): a student's code run with its inputs and
model on PyTorch's meta device, so that a hard-coded ``"cpu"`` shows on a CPU — in one process, across the wire,
and in the sandboxed student process (Part B's, without diffusers, too)."""

from __future__ import annotations

import pytest
import torch

from autograder.notebook import Cell
from autograder.remote import RemoteFunction
from autograder.sandbox import Sandbox
from fwd_kit.checks import check_forward, check_time_fm_sample
from fwd_kit.checks.compare import assert_follows_device, sharing_device_verdicts
from fwd_kit.checks.fixtures import on_meta, tiny_unet
from fwd_kit.checks.public_b_generative import sampler_unet
from fwd_kit.grading.wire import Decoder, Encoder, MetaTensor, build_module

FIX = "Follow the device of the inputs/model"


def test_meta_tensors_and_modules_cross_the_wire():
    encoder = Encoder()
    node = encoder.encode([on_meta(torch.ones(2, 3)), on_meta(tiny_unet()), on_meta(sampler_unet("class")),
                           torch.ones(2)])
    assert node["list"][0] == {"meta": [2, 3], "dtype": "float32"}
    assert all(not recipe["state"] and recipe["device"] == "meta" for recipe in encoder.modules.values())
    assert list(encoder.tensors) == ["t0"]  # only the CPU tensor carries data
    student_side = Decoder(encoder.tensors)  # the student's process: real meta tensors and modules
    student_side.modules = {key: build_module(recipe, student_side) for key, recipe in encoder.modules.items()}
    x, unet, net, cpu = student_side.decode(node)
    assert x.device.type == unet.device.type == next(net.parameters()).device.type == "meta"
    assert net.training and torch.equal(cpu, torch.ones(2))
    grader_side = Decoder({}, allow_objects=False).decode(Encoder().encode(x))  # nothing to compare or copy there
    assert grader_side == MetaTensor((2, 3), torch.float32) and grader_side.device.type == "meta"


def test_the_check_sorts_what_happens_on_meta_tensors():
    x = on_meta(torch.ones(2, 3))

    def fails(run, course=None):
        with pytest.raises(AssertionError) as failure:
            assert_follows_device(run, "f", "x", course=course)
        return str(failure.value)

    message = fails(lambda: x + torch.ones(2, 3))  # a CPU tensor made inside meets x
    assert message.startswith("Does f follow the device of x,") and FIX in message and "RuntimeError" in message
    assert "NotImplementedError" in fails(lambda: x.cpu())  # .cpu() of a meta tensor: no data to copy
    assert "returned a tensor on cpu" in fails(lambda: torch.zeros(2, 3))
    assert_follows_device(lambda: x * 2, "f", "x")  # follows x
    assert_follows_device(lambda: x * torch.tensor(2.0), "f", "x")  # a 0-dim CPU tensor mixes with any device
    assert_follows_device(lambda: float(x.sum()), "f", "x")  # needs data: not the device's fault, not judged
    # the course's function, run the same way, fails too: the fault is in a helper it was given, not in f
    assert_follows_device(lambda: x + torch.ones(2, 3), "f", "x", course=lambda: x + torch.ones(2, 3))
    assert FIX in fails(lambda: x + torch.ones(2, 3), course=lambda: x * 2)


def test_a_verdict_is_shared_between_the_checks_of_a_function():
    """Inside ``sharing_device_verdicts`` (the grader: a function's public and hidden tests), the device check runs
    each function once; its verdict, pass or fail, is given again to that function's later checks, unrun."""
    x = on_meta(torch.ones(2, 3))
    runs = []

    def follows():
        runs.append("follows")
        return x * 2

    def mixes():
        runs.append("mixes")
        return x + torch.ones(2, 3)

    verdicts = {}
    with sharing_device_verdicts(verdicts):
        assert_follows_device(follows, "f", "x")
        assert_follows_device(mixes, "f", "x")  # f's verdict stands
        with pytest.raises(AssertionError, match=FIX) as first:
            assert_follows_device(mixes, "g", "x")
        with pytest.raises(AssertionError, match=FIX) as again:
            assert_follows_device(follows, "g", "x")  # g's verdict stands
    assert runs == ["follows", "mixes"]
    assert verdicts == {"f": None, "g": str(first.value)} and str(again.value) == str(first.value)
    with pytest.raises(AssertionError, match=FIX):  # outside it, every check runs
        assert_follows_device(mixes, "f", "x")
    assert runs[-1] == "mixes"


def forward_noise_on_the_cpu(x0, t, alphas_cumprod, noise=None, generator=None):
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype) if noise is None else noise
    return alphas_cumprod[t] ** 0.5 * x0 + (1 - alphas_cumprod[t]) ** 0.5 * noise


def test_a_hard_coded_device_fails_in_one_process():
    with pytest.raises(AssertionError, match=FIX):
        check_forward(forward_noise_on_the_cpu, seed=1)


SAMPLERS = '''
def time_fm_sample(unet, num_samples, img_wh=(28, 28), num_ts=50, generator=None, return_trajectory=False):
    weight = next(unet.parameters())
    x = torch.randn((num_samples, 1, img_wh[1], img_wh[0]), generator=generator, device=DEVICE, dtype=weight.dtype)
    trajectory = [x]
    with eval_mode(unet), torch.no_grad():
        for i in range(num_ts):
            x = x + unet(x, torch.full((num_samples,), i / num_ts, device=x.device, dtype=x.dtype)) / num_ts
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x
'''


@pytest.mark.parametrize("device, passes", [("weight.device", True), ('"cpu"', False)])
def test_the_sampler_check_in_the_sandboxed_process(device, passes):
    """Part B's student process (no diffusers): its first operation on a meta tensor imports torch._dynamo,
    which the hardened process would refuse unless the wire imported it before."""
    source = SAMPLERS.replace("DEVICE", device)
    with Sandbox([Cell("time_fm_sample", source)], ["import torch", "from fwd_kit.nets import eval_mode"],
                 diffusers=False) as sandbox:
        student = RemoteFunction(sandbox, "time_fm_sample")
        if passes:
            check_time_fm_sample(student, seed=1)
        else:
            with pytest.raises(AssertionError, match=FIX):
                check_time_fm_sample(student, seed=1)
