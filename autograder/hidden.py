"""Hidden inputs: the hidden checks' seeds come from a per-offering secret that only the graders hold.

The public checks (``fwd_kit.checks``) are the students' to read; with ``seed=0`` they run on the
notebook's inputs, with any other seed on other pictures, noise, timesteps, scales and shapes. The
hidden tests run them at seeds derived from a secret, ``hidden_seed(k)``, so knowing the check code is
not enough to know the hidden inputs. The secret is chosen when the instructor first grades or builds the
Gradescope zip (``course gradescope`` writes it into the zip), kept in the instructor's config
(``~/.config/fun-with-diffusion/hidden_secret``, or ``FWD_HIDDEN_SECRET_FILE``) or given in the
environment (``FWD_HIDDEN_SECRET``), and never in the student kit.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

SECRET_ENV = "FWD_HIDDEN_SECRET"  # the secret itself (CI, Gradescope's run_autograder)
SECRET_FILE_ENV = "FWD_HIDDEN_SECRET_FILE"  # a file holding it
DEFAULT_SECRET_FILE = Path.home() / ".config" / "fun-with-diffusion" / "hidden_secret"
SEED_RANGE = 2**62  # hidden seeds are 1 … SEED_RANGE (62 bits: never guessed from what they derive); 0: public
HIDDEN_RUN = 1  # the hidden tests' seed is hidden_seed(HIDDEN_RUN)


def secret_file() -> Path:
    return Path(os.environ.get(SECRET_FILE_ENV) or DEFAULT_SECRET_FILE)


SECRET_READ = False  # whether this process has read the secret (it may then never be a zygote's parent)


def read_secret() -> str | None:
    """The offering's secret from the environment or the instructor's config file; None if there is none."""
    global SECRET_READ
    if os.environ.get(SECRET_ENV):
        SECRET_READ = True
        return os.environ[SECRET_ENV]
    path = secret_file()
    secret = path.read_text().strip() or None if path.is_file() else None
    SECRET_READ = SECRET_READ or secret is not None
    return secret


def ensure_secret(log=None) -> str:
    """The offering's secret; created (random, 128 bits, file mode 0600) the first time it is needed."""
    secret = read_secret()
    if secret:
        return secret
    path = secret_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(16)
    global SECRET_READ
    SECRET_READ = True
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    if log is not None:
        log(f"course: created the hidden-test secret of this offering in {path}: keep it (the same secret "
            "gives the same hidden inputs) and never give it to students.")
    return secret


def hidden_seed(k: int = 1, secret: str | None = None) -> int:
    """The ``k``-th hidden seed of the offering: HMAC-SHA256(secret, k), folded into 1 … SEED_RANGE."""
    key = (secret or ensure_secret()).encode()
    digest = hmac.new(key, f"fun-with-diffusion/hidden-seed/{k}".encode(), "sha256").digest()
    return 1 + int.from_bytes(digest[:8], "big") % SEED_RANGE
