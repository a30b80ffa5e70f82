"""The grader's start-up (autograder.startup): imports with the cyclic garbage collector off, then frozen; no
transformers or SciPy in the grader, both back in the student's process."""

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import gc, json, weakref
    from autograder.startup import imports_unscanned

    class Node:
        pass

    def cycle():
        a, b = Node(), Node()
        a.other, b.other = b, a
        return weakref.ref(a)

    out = {"enabled_before": gc.isenabled()}
    frozen_before = gc.get_freeze_count()
    with imports_unscanned():
        out["enabled_inside"] = gc.isenabled()
        kept = [Node() for _ in range(1000)]
        garbage_frozen = cycle()
    out["frozen_grew_by"] = gc.get_freeze_count() - frozen_before
    out["enabled_after"] = gc.isenabled()
    gc.collect()
    out["garbage_kept_frozen"] = garbage_frozen() is not None  # frozen: never collected
    with imports_unscanned(collect=True):
        garbage_collected = cycle()
    out["garbage_collected_first"] = garbage_collected() is None
    gc.disable()
    with imports_unscanned():
        pass
    out["disabled_stays_disabled"] = not gc.isenabled()
    gc.enable()
    frozen = gc.get_freeze_count()
    import autograder.preload  # noqa: F401
    out["preload_froze"] = gc.get_freeze_count() - frozen
    out["torch_loaded"] = "torch" in __import__("sys").modules
    try:
        import scipy  # noqa: F401
        out["scipy_blocked"] = False
    except ModuleNotFoundError:
        out["scipy_blocked"] = True
    from diffusers import DDPMScheduler, UNet2DConditionModel  # noqa: F401
    from diffusers.utils import is_transformers_available
    out["diffusers_sees_transformers"] = is_transformers_available()
    from torch.utils._triton import has_triton_package
    out["torch_sees_triton"] = has_triton_package()
    out["cuda_bindings_loaded"] = "cuda.bindings" in __import__("sys").modules
    from autograder.startup import with_unused_packages
    with_unused_packages()  # what a student's process does first
    import scipy  # noqa: F401
    out["scipy_back"] = True
    print(json.dumps(out))
""")


def test_imports_run_without_the_collector_and_what_they_loaded_is_frozen():
    import json

    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["enabled_before"] and not out["enabled_inside"] and out["enabled_after"]
    assert out["frozen_grew_by"] >= 1000  # the 1000 nodes made inside (and the list) are frozen
    assert out["garbage_kept_frozen"] and out["garbage_collected_first"]
    assert out["disabled_stays_disabled"]
    # the grader's modules (torch among them) are loaded and frozen: hundreds of thousands of objects
    assert out["torch_loaded"] and out["preload_froze"] > 100_000
    # transformers and SciPy are kept out of the grader (diffusers skips them), and given back to the student
    assert out["scipy_blocked"] and not out["diffusers_sees_transformers"] and out["scipy_back"]
    # and the CUDA build's Triton and CUDA bindings, which torch imports when installed (as here: see below)
    assert not out["torch_sees_triton"] and not out["cuda_bindings_loaded"]


def test_this_torch_build_has_the_triton_and_cuda_bindings_that_the_grader_keeps_out():
    import importlib.util

    import torch

    if torch.version.cuda is None:

        pytest.skip("the CPU build of torch brings neither Triton nor the CUDA bindings")
    assert importlib.util.find_spec("triton") is not None and importlib.util.find_spec("cuda.bindings") is not None


DYNAMO_SCRIPT = textwrap.dedent("""
    import gc, json, sys, types
    import autograder.preload  # noqa: F401 - what a grading process does first
    from autograder.catalogue import load_assignment
    from autograder.zygote import preload

    import torch

    def kind():
        return type(sys.modules["torch._dynamo"]).__name__

    def copies(name):  # real modules of that name (a stand-in that torchvision still holds is not one)
        return sum(1 for m in gc.get_objects() if isinstance(m, types.ModuleType) and m.__name__ == name
                   and not type(m).__name__.endswith("StandIn"))

    out = {}
    preload(False, load_assignment("partB").preamble)  # what Part B's zygote loads before it forks
    out["after_preload"] = kind()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    w = torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(1))
    on_meta = torch.nn.functional.conv2d((x * 2 + 1).to("meta"), w.to("meta")).sigmoid()
    out["meta_shape"] = list(on_meta.shape)
    try:
        torch.ones(2, 4, 6, 6) + on_meta  # two devices: the device check's error, from the meta kernels
    except RuntimeError as err:
        out["mixed"] = str(err)
    out["meta_ops"] = kind()
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    before = model.weight.detach().clone()
    model(torch.ones(4, 3)).pow(2).mean().backward()
    opt.step()  # torch.optim calls torch._dynamo.graph_break() around every step
    out["adam_moved"] = bool((model.weight != before).all())
    out["after_adam"] = kind()
    preload(True, load_assignment("partA").preamble)  # diffusers' allow_in_graph, torchvision's utils import
    out["after_part_A"] = kind()
    if sys.argv[1] == "call":  # torchvision's function, called: the real one answers
        from torch._dynamo.utils import is_compile_supported
        out["answer"] = is_compile_supported("cpu")
    else:  # a submodule that the real package imports itself, imported while the stand-in is in place
        from torch._dynamo.eval_frame import is_dynamo_supported
        out["answer"] = is_dynamo_supported()
    out["after"] = kind()
    out["copies"] = [copies(n) for n in ("torch._dynamo", "torch._dynamo.utils", "torch._dynamo.eval_frame")]
    # a module executed twice: the package's names come from the first copy, sys.modules holds the second
    out["one_run"] = [torch._dynamo.optimize.__globals__ is sys.modules["torch._dynamo.eval_frame"].__dict__,
                      torch._dynamo.reset_frame_count.__globals__ is sys.modules["torch._dynamo.utils"].__dict__]
    out["same"] = [sys.modules[n] is getattr(torch._dynamo, n.rpartition(".")[2]) for n in (
        "torch._dynamo.utils", "torch._dynamo.eval_frame")]
    compiled = torch.compile(lambda a: a * 2 + 1, backend="eager")
    out["compiled"] = compiled(torch.ones(3)).tolist()
    print(json.dumps(out))
""")


@pytest.mark.parametrize("way", ["call", "submodule"])
def test_a_grader_never_loads_torchdynamo_and_anything_that_needs_it_gets_the_real_one(way):
    """autograder.startup.dynamo_on_demand: meta operations (the device check), Adam's step and Part A's
    imports (diffusers, torchvision) run on the stand-ins in a grader (zygote included); calling torchvision's
    function or importing another submodule puts the whole real TorchDynamo in their place, each module
    once, and torch.compile then works."""
    import json

    done = subprocess.run([sys.executable, "-c", DYNAMO_SCRIPT, way], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["after_preload"] == out["meta_ops"] == out["after_adam"] == out["after_part_A"] == "_DynamoStandIn"
    assert out["meta_shape"] == [2, 4, 6, 6] and out["adam_moved"]
    assert "device" in out["mixed"] and "meta" in out["mixed"]
    assert out["answer"] is True and out["after"] == "module"
    assert out["copies"] == [1, 1, 1] and out["same"] == [True, True] and out["one_run"] == [True, True]
    assert out["compiled"] == [3.0, 3.0, 3.0]
