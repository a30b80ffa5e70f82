"""What crosses between the grader and the sandboxed student process: plain data and tensors, never pickle.

A value is written as a JSON tree plus a dict of tensors (saved with safetensors):

=====================  ==========================================================================
Python value           JSON node
=====================  ==========================================================================
None, bool, int,       ``{"v": value}`` (floats may be NaN or ±inf: Python's json writes them)
float, str
torch.Tensor           ``{"tensor": key, "grad": requires_grad}``; the data is ``tensors[key]``
a tensor on PyTorch's  ``{"meta": shape, "dtype": "float32"}``: it has no data (the device check runs the
meta device            student's code on such tensors); on the grader's side it becomes a :class:`MetaTensor`
list / tuple           ``{"list": [...]}`` / ``{"tuple": [...]}``
dict with str keys     ``{"dict": {key: node}}``
torch.dtype            ``{"dtype": "float32"}``
torch.device           ``{"device": "cpu"}``
torch.Generator        ``{"generator": key}``: its state, ``tensors[key]`` (uint8)
nn.Module              ``{"module": id}``: built from ``modules[id]`` (a :func:`module_recipe`; a module on
                       the meta device travels without weights and is built there)
diffusers scheduler    ``{"scheduler": class name, "config": {...}}``
a trusted function     ``{"function": "fwd_kit.nets.denoise"}``
a torch function with  ``{"partial": "torch.flip", "args": node, "kwargs": node}`` (a view such as
bound arguments        ``functools.partial(torch.flip, dims=[2])``: data, not code)
an object living in    ``{"remote": handle}`` (a student's module instance, see ``autograder.remote`` on the grader's side)
the student process
=====================  ==========================================================================

Decoding is strict: a node of another form, a tensor key that is missing, a function outside the
trusted packages or a module class that is not allowed raises :class:`WireError`. Decoding on the
grader's side accepts only data nodes (no modules, functions or generators from the student side).
"""

from __future__ import annotations

import functools
import importlib
import json
import math
from dataclasses import dataclass

import torch
import torch._dynamo  # noqa: F401 - see below
import torch.fx.experimental.symbolic_shapes  # noqa: F401 - see below
import torch.nn as nn

from fwd_kit.copying import fresh_copy

# torch._dynamo and symbolic_shapes: PyTorch imports them on the first operation on a meta tensor (the device
# check), and importing either sets function defaults, which the student's process refuses once it is
# hardened; that process imports this module before it is hardened (the zygote too, before it forks one), so
# the imports happen here. In the grader (and so the zygote) the first finds the stand-in of
# autograder.startup.dynamo_on_demand, which is all these operations need of it, in Part A as in Part B; the
# meta kernels' checks (torch._check) import the second themselves (with SymPy), stand-in or not.

TRUSTED_FUNCTION_PREFIXES = ("fwd_kit.", "torch.")  # functions that may be named in a request
MODULE_CLASSES = {  # module classes a request may ask the student process to build
    "diffusers": ("diffusers.",),
    "class": ("fwd_kit.",),
}
MAX_DEPTH = 12  # nesting of lists/dicts a response may have


class WireError(ValueError):
    """A value that cannot be sent, or a message that does not follow the format."""


@dataclass(frozen=True)
class MetaTensor:
    """A tensor on PyTorch's meta device, as the grader receives it: its shape and dtype, no data.

    The device check runs a student's code on meta tensors and a meta model (a hard-coded ``"cpu"`` then
    mixes devices); what comes back is only looked at, never compared or copied, so on the grader's side it
    is this record rather than a tensor. ``device`` is ``meta``, like the tensor's.
    """

    shape: tuple
    dtype: torch.dtype
    device: torch.device = torch.device("meta")


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def dtype_from_name(name: str) -> torch.dtype:
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise WireError(f"expected a torch dtype name such as 'float32', got {name!r}")
    return dtype


def qualified_name(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def import_qualified(path: str, prefixes: tuple[str, ...]):
    """The object at ``package.module.name`` (``Class.attr`` allowed), if ``path`` starts with a trusted prefix."""
    if not isinstance(path, str) or not path.startswith(prefixes):
        raise WireError(f"{path!r} is not among the trusted names ({', '.join(prefixes)}…)")
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise WireError(f"cannot import {path!r}")


class Encoder:
    """Turns Python values into JSON nodes, collecting tensors and module recipes on the way."""

    def __init__(self, prefix: str = "t", module_ids: dict | None = None):
        self.prefix = prefix
        self.tensors: dict[str, torch.Tensor] = {}
        self.modules: dict[str, dict] = {}
        self.generators: dict[str, torch.Generator] = {}  # key → generator sent (to update after the call)
        self.sent_modules: dict[str, nn.Module] = {}  # id → module sent
        self._module_ids = module_ids if module_ids is not None else {}

    def tensor_key(self, tensor: torch.Tensor) -> str:
        key = f"{self.prefix}{len(self.tensors)}"
        self.tensors[key] = tensor.detach().to("cpu").clone().contiguous()  # safetensors refuses shared storage
        return key

    def encode(self, value, depth: int = 0):
        if depth > MAX_DEPTH:
            raise WireError("value nested too deeply")
        if value is None or isinstance(value, (bool, int, float, str)):
            return {"v": value}
        if isinstance(value, MetaTensor) or (isinstance(value, torch.Tensor) and value.device.type == "meta"):
            return {"meta": [int(n) for n in value.shape], "dtype": _dtype_name(value.dtype)}
        if isinstance(value, torch.Tensor):
            return {"tensor": self.tensor_key(value), "grad": bool(value.requires_grad)}
        if isinstance(value, (list, tuple)):
            return {type(value).__name__ if type(value) in (list, tuple) else "list":
                    [self.encode(v, depth + 1) for v in value]}
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise WireError("dict keys must be strings")
            return {"dict": {k: self.encode(v, depth + 1) for k, v in value.items()}}
        if isinstance(value, torch.dtype):
            return {"dtype": _dtype_name(value)}
        if isinstance(value, torch.device):
            return {"device": str(value)}
        if isinstance(value, torch.Generator):
            key = self.tensor_key(value.get_state())
            self.generators[key] = value
            return {"generator": key}
        if isinstance(value, nn.Module) and isinstance(getattr(value, "_handle", None), str) \
                and type(value).__name__ == "RemoteModule":  # a proxy of the student's own module instance
            return {"remote": value._handle}
        if isinstance(value, nn.Module):
            module_id = f"m{len(self.modules)}"
            self.modules[module_id] = module_recipe(value, self)
            self.sent_modules[module_id] = value
            return {"module": module_id}
        if hasattr(value, "config") and type(value).__module__.startswith("diffusers.schedulers"):
            return {"scheduler": type(value).__name__, "config": json.loads(json.dumps(dict(value.config), default=str))}
        if isinstance(value, functools.partial) and getattr(torch, getattr(value.func, "__name__", ""), None) is value.func:
            return {"partial": f"torch.{value.func.__name__}", "args": self.encode(list(value.args), depth + 1),
                    "kwargs": self.encode(dict(value.keywords), depth + 1)}
        if callable(value) and qualified_name(value).startswith(TRUSTED_FUNCTION_PREFIXES):
            return {"function": qualified_name(value)}
        raise WireError(f"cannot send a {type(value).__name__} to the student process")


def module_recipe(module: nn.Module, encoder: Encoder) -> dict:
    """How the student process rebuilds ``module``: its class, constructor arguments, weights, mode.

    diffusers models rebuild from their ``config``; the reference's and the fixtures' modules from the
    arguments :func:`fwd_kit.checks.fixtures.build` recorded (``_wire_init``). Weights and buffers travel as
    tensors (a module on the meta device has none: it is built and moved there); ``record`` asks the student
    process to log every call (replayed on the grader's copy).
    """
    cls = type(module)
    values = list(module.state_dict().values())
    on_meta = any(v.device.type == "meta" for v in values)
    state = {} if on_meta else {k: encoder.tensor_key(v) for k, v in module.state_dict().items()}
    base = dict(path=qualified_name(cls), state=state, training=bool(module.training),
                dtype=_dtype_name(values[0].dtype) if values else None, device="meta" if on_meta else None)
    if cls.__module__.startswith("diffusers."):
        return dict(base, kind="diffusers", config=json.loads(json.dumps(dict(module.config), default=list)))
    init = getattr(module, "_wire_init", None)
    if init is None:
        raise WireError(f"cannot send a {cls.__name__}: build it with fwd_kit.checks.fixtures.build so that its "
                        "constructor arguments are known")
    args, kwargs = init
    return dict(base, kind="class", args=encoder.encode(list(args)), kwargs=encoder.encode(dict(kwargs)))


class Decoder:
    """Turns JSON nodes back into Python values; ``trusted`` decides which node kinds are accepted."""

    def __init__(self, tensors: dict, modules: dict | None = None, remotes: dict | None = None,
                 allow_objects: bool = True):
        self.tensors = tensors
        self.modules = modules or {}  # id → built module
        self.remotes = remotes or {}  # handle → object in this process
        self.allow_objects = allow_objects
        self.generators: dict[str, torch.Generator] = {}

    def tensor(self, key) -> torch.Tensor:
        if not isinstance(key, str) or key not in self.tensors:
            raise WireError(f"a tensor named {key!r} was referred to but not sent")
        return self.tensors[key]

    def decode(self, node, depth: int = 0):
        if depth > MAX_DEPTH:
            raise WireError("value nested too deeply")
        if not isinstance(node, dict) or len(node) not in (1, 2, 3):
            raise WireError(f"expected a value node, got {str(node)[:80]}")
        kind = next(iter(node))
        body = node[kind]
        if kind == "v":
            if body is None or isinstance(body, (bool, int, float, str)):
                return body
        elif kind == "tensor":
            t = self.tensor(body)
            if node.get("grad") and t.is_floating_point():
                t = t.detach().requires_grad_(True).clone()  # not a leaf: as in the caller, in-place ops work
            return t
        elif kind == "meta" and isinstance(body, list) and all(type(n) is int and n >= 0 for n in body):
            shape, dtype = tuple(body), dtype_from_name(node.get("dtype"))
            return torch.empty(shape, dtype=dtype, device="meta") if self.allow_objects else MetaTensor(shape, dtype)
        elif kind in ("list", "tuple") and isinstance(body, list):
            items = [self.decode(v, depth + 1) for v in body]
            return items if kind == "list" else tuple(items)
        elif kind == "dict" and isinstance(body, dict):
            return {str(k): self.decode(v, depth + 1) for k, v in body.items()}
        elif kind == "dtype":
            return dtype_from_name(body)
        elif kind == "device" and isinstance(body, str):
            return torch.device(body)
        elif not self.allow_objects:
            raise WireError(f"a {kind!r} node is not accepted here")
        elif kind == "generator":
            g = torch.Generator()
            g.set_state(self.tensor(body).to(torch.uint8))
            self.generators[body] = g
            return g
        elif kind == "module":
            if body not in self.modules:
                raise WireError(f"module {body!r} was not sent")
            return self.modules[body]
        elif kind == "remote":
            if body not in self.remotes:
                raise WireError(f"no object with handle {body!r}")
            return self.remotes[body]
        elif kind == "scheduler":
            import diffusers

            cls = getattr(diffusers, str(body), None)
            if cls is None or not str(body).endswith("Scheduler"):
                raise WireError(f"unknown scheduler {body!r}")
            return cls.from_config(node["config"])
        elif kind == "function":
            return import_qualified(body, TRUSTED_FUNCTION_PREFIXES)
        elif kind == "partial":
            name = str(body)
            func = getattr(torch, name[len("torch."):], None) if name.startswith("torch.") else None
            if not callable(func):
                raise WireError(f"{name!r} is not a torch function")
            args, kwargs = self.decode(node.get("args", {"list": []}), depth + 1), self.decode(node.get("kwargs", {"dict": {}}), depth + 1)
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise WireError("a partial's args must be a list and its kwargs a dict")
            return functools.partial(func, *args, **kwargs)
        raise WireError(f"unexpected value node {kind!r}")


_PROTOTYPES: dict[str, nn.Module] = {}  # "class config" → a diffusers model built once, copied for each build
MAX_PROTOTYPES = 4  # a check sends a few distinct models (the tiny UNet, the digit model, the device check's)


def _prototype(cls, config: dict) -> nn.Module:
    """``cls.from_config(config)``, built once per process: a grading run sends the same few models dozens of
    times, and building one from its config costs 10 to 20 ms, copying it 3 (:func:`fwd_kit.copying.fresh_copy`)."""
    key = f"{qualified_name(cls)} {json.dumps(config, sort_keys=True, default=str)}"
    if key not in _PROTOTYPES:
        if len(_PROTOTYPES) >= MAX_PROTOTYPES:
            _PROTOTYPES.pop(next(iter(_PROTOTYPES)))
        _PROTOTYPES[key] = cls.from_config(config)
    return _PROTOTYPES[key]


def build_module(recipe: dict, decoder: Decoder) -> nn.Module:
    """Rebuild a module from :func:`module_recipe` (weights loaded strictly, mode restored)."""
    kind = recipe.get("kind")
    if kind not in MODULE_CLASSES:
        raise WireError(f"unknown module kind {kind!r}")
    cls = import_qualified(recipe["path"], MODULE_CLASSES[kind])
    if kind == "diffusers":
        module = fresh_copy(_prototype(cls, recipe["config"]))  # its weights are all loaded below
    else:
        module = cls(*decoder.decode(recipe["args"]), **decoder.decode(recipe["kwargs"]))
    dtype = dtype_from_name(recipe["dtype"]) if recipe.get("dtype") else None
    if dtype is not None and any(p.dtype != dtype for p in module.parameters()):
        module = module.to(dtype)
    if recipe.get("device") == "meta":  # no weights: the device check only runs the student's code on it
        module = module.to("meta")
    else:
        module.load_state_dict({k: decoder.tensor(v) for k, v in recipe["state"].items()}, strict=True)
    return module.train(bool(recipe.get("training")))


def finite_json(value):
    """``value`` with NaN/inf floats replaced by strings, for JSON files other tools read strictly."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value
