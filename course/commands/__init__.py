"""One module per ``course`` subcommand; each defines ``register(subparsers)``.

``register`` adds its parser and sets ``func`` (called with the parsed arguments, returns an exit code).
Keep imports of torch/diffusers inside the functions so that ``course --help`` stays fast.
"""

# Order shown in ``course --help``.
COMMANDS = ["demo", "embed", "train", "evaluate", "train_mini", "release", "grade", "similarity", "gallery", "bundle",
            "gradescope"]
