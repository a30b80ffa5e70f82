"""``course bundle``: the reference run on fixed inputs and seeds, saved to judge students' GPU artifacts."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bundle",
        help="run the Part A reference on fixed inputs and save a bundle for grading students' GPU artifacts",
        description="Run the reference (forward, one-step, one denoising step, CFG, a short CFG run, SDEdit, "
        "inpainting, one anagram and one hybrid step) on fixed inputs and seeds, on the model, device and dtype "
        "the students use, and save inputs, outputs and a manifest (safetensors). Give students the --inputs-out "
        "copy; the grader keeps the full bundle.",
    )
    p.add_argument("--model", default="digit", help="stage-1 model: 'digit' (default), a hub id or a local folder")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"),
                   help="default: float16 on cuda, float32 on cpu")
    p.add_argument("--embeds", help="prompt embeddings (safetensors or .pth); default: the digit model's")
    p.add_argument("--prompts", nargs=2, metavar=("PROMPT_1", "PROMPT_2"),
                   help="the two prompts (default: digits six and nine for the digit model, else the first two "
                   "non-empty prompts of --embeds in alphabetical order)")
    p.add_argument("--seed", type=int, default=0, help="seed of the inputs and generators (default: %(default)s)")
    p.add_argument("--out", type=Path, required=True, help="the bundle to write (safetensors)")
    p.add_argument("--inputs-out", type=Path, help="also write the students' copy without the reference outputs")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from course.bundle import build_bundle, write_inputs_only
    from fwd_kit.digit_model import DIGIT_PROMPTS
    from fwd_kit.loading import (
        DIGIT_EMBEDS,
        DIGIT_MODEL,
        default_device,
        default_dtype,
        load_prompt_embeds,
        load_stage1,
    )

    device = torch.device(args.device) if args.device else default_device()
    dtype = getattr(torch, args.dtype) if args.dtype else default_dtype(device)
    is_digit = args.model == "digit"
    if not is_digit and not args.embeds:
        raise SystemExit("course bundle: --embeds is required for a model other than 'digit' (course embed makes it).")
    try:
        embeds = load_prompt_embeds(args.embeds or DIGIT_EMBEDS)
        prompts = args.prompts or ((DIGIT_PROMPTS[6], DIGIT_PROMPTS[9]) if is_digit and not args.embeds
                                   else tuple(sorted(p for p in embeds if p))[:2])
        if len(prompts) < 2:
            raise ValueError("the embeddings need two non-empty prompts besides ''")
        stage_1 = load_stage1(DIGIT_MODEL if is_digit else args.model, device=device, dtype=dtype)
        path = build_bundle(stage_1.unet, stage_1.scheduler, embeds, tuple(prompts), args.out,
                            model_id=args.model, seed=args.seed)
    except (ValueError, OSError) as err:
        raise SystemExit(f"course bundle: {err}") from None
    print(f"Wrote {path}: the reference on {args.model} ({device.type}, {str(dtype).replace('torch.', '')}), "
          f"prompts {prompts[0]!r} and {prompts[1]!r}, seed {args.seed}.")
    if args.inputs_out:
        print(f"Wrote {write_inputs_only(path, args.inputs_out)}: the students' copy (inputs only).")
    return 0
