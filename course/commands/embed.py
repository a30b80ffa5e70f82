"""``course embed PROMPTS.txt --out FILE``: T5 prompt embeddings for Part A, saved as safetensors.

One prompt per line; blank lines and lines starting with ``#`` are skipped. The empty prompt ``""``
(for classifier-free guidance) is always added. Needs the stage-1 model's T5 text encoder (about
10 GB of GPU memory in fp16, 5 GB with ``--8bit``) and access to it (see ``fwd_kit.loading``).
"""

from __future__ import annotations

import sys
from pathlib import Path


def read_prompts(path) -> list[str]:
    """The prompts of a text file: one per line, stripped; blank lines and ``#`` comments skipped."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"PROMPTS must be a text file with one prompt per line, but {path} does not exist.")
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def run(args) -> int:
    import torch

    from fwd_kit.loading import STAGE1_DEFAULT, compute_prompt_embeds, save_prompt_embeds

    try:
        prompts = read_prompts(args.prompts)
    except ValueError as err:
        print(f"course embed: {err}", file=sys.stderr)
        return 2
    model = args.model or STAGE1_DEFAULT
    embeds = compute_prompt_embeds(prompts, model_id=model, device=args.device, load_in_8bit=args.eight_bit)
    dtype = {"float16": torch.float16, "float32": torch.float32}[args.dtype]
    save_prompt_embeds(embeds, args.out, dtype=dtype)
    for prompt, e in embeds.items():
        print(f"{tuple(e.shape)}  {prompt!r}")
    print(f"Wrote {len(embeds)} prompt embeddings ({args.dtype}) to {args.out}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="compute T5 prompt embeddings for Part A",
        description='Compute T5 prompt embeddings {prompt: (1, 77, W)} for Part A and save them as safetensors. '
        'The empty prompt "" is always included.',
    )
    parser.add_argument("prompts", help="text file, one prompt per line (# comments and blank lines skipped)")
    parser.add_argument("--out", required=True, help="output .safetensors file")
    parser.add_argument(  # None → fwd_kit.loading.STAGE1_DEFAULT, resolved in run() to keep --help fast
        "--model", default=None, help="hub id or directory of the stage-1 pipeline (default: DeepFloyd/IF-I-XL-v1.0)"
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--8bit", dest="eight_bit", action="store_true", help="load T5 in 8 bit (bitsandbytes, GPU)")
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="stored dtype")
    parser.set_defaults(func=run)
