"""The grader's start-up (autograder.startup): imports with the cyclic garbage collector off, then frozen; no
transformers or SciPy in the grader, both back in the student's process."""

import subprocess
import sys
import textwrap

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
        import pytest

        pytest.skip("the CPU build of torch brings neither Triton nor the CUDA bindings")
    assert importlib.util.find_spec("triton") is not None and importlib.util.find_spec("cuda.bindings") is not None
