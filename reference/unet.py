"""Part B UNets for 28×28 digits: the course's ten ops and three networks (spec §3.1).

Shapes are (N, C, H, W). Digits are (N, 1, 28, 28) in [0, 1]. Every network has the same skeleton,
with D = ``num_hiddens``:

    x (in×28×28) ─conv_in─ e1 (D×28) ─down1─ e2 (D×14) ─down2─ e3 (2D×7) ─flatten─ (2D×1×1)
    ─unflatten─ u0 (2D×7)  [injection point 1: a 2D-vector]
    cat(e3, u0) 4D×7  ─up1─  u1 (D×14)  [injection point 2: a D-vector]
    cat(e2, u1) 2D×14 ─up2─  u2 (D×28)
    cat(e1, u2) 2D×28 ─conv_out─ D×28 ─head─ in×28×28   (head is a plain Conv2d: no BN, no GELU)

The 7×7 bottleneck (28 → 14 → 7, then ``AvgPool2d(7)``) is why inputs must be exactly 28×28.

Submodule names are part of the API (a grader loads reference weights by ``state_dict``): ``conv_in``,
``down1``, ``down2``, ``flatten``, ``unflatten``, ``up1``, ``up2``, ``conv_out``, ``head``, and for
conditioning ``fc1_t``, ``fc2_t``, ``fc1_c``, ``fc2_c``. Inside the ops: ``Conv``/``DownConv``/``UpConv``/
``Unflatten`` hold ``conv``, ``norm``, ``act``; ``ConvBlock`` holds ``conv1``, ``conv2``; ``DownBlock``
holds ``down``, ``block``; ``UpBlock`` holds ``up``, ``block``; ``FCBlock`` holds ``fc1``, ``act``, ``fc2``.

Time conventions of the conditioned networks: they take a float time ``t`` in [0, 1] per sample. Flow
matching feeds t directly (t = 0 noise, t = 1 data); DDPM feeds t/T (t = 0 clean).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from fwd_kit.nets import check_digits, device_and_dtype, eval_mode, time_column  # noqa: F401 - re-exported
from fwd_kit.validate import check_tensor

# ---------------------------------------------------------------------------------------------------
# Helpers shared by the samplers (not part of the course's ops)










# ---------------------------------------------------------------------------------------------------
# Simple ops (1)–(6)


class Conv(nn.Module):
    """(1) Conv2d(k=3, s=1, p=1) → BatchNorm2d → GELU: (N, in, H, W) → (N, out, H, W).

    Submodules: ``conv``, ``norm``, ``act``.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.norm = nn.BatchNorm2d(out_channels)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class DownConv(nn.Module):
    """(2) Conv2d(k=3, s=2, p=1) → BatchNorm2d → GELU: (N, in, H, W) → (N, out, H/2, W/2).

    Submodules: ``conv``, ``norm``, ``act``.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(out_channels)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class UpConv(nn.Module):
    """(3) ConvTranspose2d(k=4, s=2, p=1) → BatchNorm2d → GELU: (N, in, H, W) → (N, out, 2H, 2W).

    Submodules: ``conv``, ``norm``, ``act``.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(out_channels)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class Flatten(nn.Module):
    """(4) AvgPool2d(7) → GELU: (N, C, 7, 7) → (N, C, 1, 1). No parameters.

    Submodules: ``pool``, ``act``.
    """

    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(7)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.pool(x))


class Unflatten(nn.Module):
    """(5) ConvTranspose2d(k=7, s=7, p=0) → BatchNorm2d → GELU: (N, C, 1, 1) → (N, C, 7, 7).

    Submodules: ``conv``, ``norm``, ``act``.
    """

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, in_channels, kernel_size=7, stride=7, padding=0)
        self.norm = nn.BatchNorm2d(in_channels)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class Concat(nn.Module):
    """(6) Concatenate along channels: (N, C1, H, W), (N, C2, H, W) → (N, C1 + C2, H, W). No parameters."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, y], dim=1)


# ---------------------------------------------------------------------------------------------------
# Composed ops (7)–(10)


class ConvBlock(nn.Module):
    """(7) Conv(in, out) → Conv(out, out): (N, in, H, W) → (N, out, H, W).

    Submodules: ``conv1``, ``conv2``.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = Conv(in_channels, out_channels)
        self.conv2 = Conv(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class DownBlock(nn.Module):
    """(8) DownConv(in, out) → ConvBlock(out, out): (N, in, H, W) → (N, out, H/2, W/2).

    Submodules: ``down``, ``block``.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.down = DownConv(in_channels, out_channels)
        self.block = ConvBlock(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.down(x))


class UpBlock(nn.Module):
    """(9) UpConv(in, out) → ConvBlock(out, out): (N, in, H, W) → (N, out, 2H, 2W).

    Submodules: ``up``, ``block``.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = UpConv(in_channels, out_channels)
        self.block = ConvBlock(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.up(x))


class FCBlock(nn.Module):
    """(10) Linear(F_in, F_out) → GELU → Linear(F_out, F_out): (N, F_in) → (N, F_out). Embeds t or c.

    Submodules: ``fc1``, ``act``, ``fc2``.
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.fc1 = nn.Linear(in_features, out_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(out_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


# ---------------------------------------------------------------------------------------------------
# The three networks


class UnconditionalUNet(nn.Module):
    """The single-step denoiser's UNet: (N, in_channels, 28, 28) → (N, in_channels, 28, 28).

    Submodules (D = num_hiddens): conv_in ConvBlock(in, D); down1 DownBlock(D, D); down2 DownBlock(D, 2D);
    flatten Flatten; unflatten Unflatten(2D); up1 UpBlock(4D, D); up2 UpBlock(2D, D);
    conv_out ConvBlock(2D, D); head Conv2d(D, in, k=3, s=1, p=1); concat Concat.
    """

    def __init__(self, in_channels: int = 1, num_hiddens: int = 128):
        super().__init__()
        D = num_hiddens
        self.in_channels = in_channels
        self.num_hiddens = num_hiddens
        self.conv_in = ConvBlock(in_channels, D)
        self.down1 = DownBlock(D, D)
        self.down2 = DownBlock(D, 2 * D)
        self.flatten = Flatten()
        self.unflatten = Unflatten(2 * D)
        self.up1 = UpBlock(4 * D, D)
        self.up2 = UpBlock(2 * D, D)
        self.conv_out = ConvBlock(2 * D, D)
        self.head = nn.Conv2d(D, in_channels, kernel_size=3, stride=1, padding=1)
        self.concat = Concat()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_digits(x, self.in_channels)
        e1 = self.conv_in(x)  # (N, D, 28, 28)
        e2 = self.down1(e1)  # (N, D, 14, 14)
        e3 = self.down2(e2)  # (N, 2D, 7, 7)
        u0 = self.unflatten(self.flatten(e3))  # (N, 2D, 1, 1) → (N, 2D, 7, 7)
        u1 = self.up1(self.concat(e3, u0))  # (N, 4D, 7, 7) → (N, D, 14, 14)
        u2 = self.up2(self.concat(e2, u1))  # (N, 2D, 14, 14) → (N, D, 28, 28)
        return self.head(self.conv_out(self.concat(e1, u2)))  # (N, D, 28, 28) → (N, in, 28, 28)


class TimeConditionalUNet(nn.Module):
    """UNet conditioned on a time t ∈ [0, 1]: forward(x (N, in, 28, 28), t (N,) or (N, 1)) → (N, in, 28, 28).

    Same submodules as :class:`UnconditionalUNet` plus fc1_t FCBlock(1, 2D) and fc2_t FCBlock(1, D);
    t1 = fc1_t(t), t2 = fc2_t(t) are reshaped to (N, C, 1, 1) and applied at the two injection points:
      conditioning="fm"   (FA25 flow matching, multiplicative): unflatten = unflatten * t1; up1 = up1 * t2
      conditioning="ddpm" (FA24 DDPM, additive):                 unflatten = unflatten + t1; up1 = up1 + t2
    """

    def __init__(self, in_channels: int = 1, num_hiddens: int = 64, conditioning: str = "fm"):
        super().__init__()
        if conditioning not in ("fm", "ddpm"):
            raise ValueError(f"conditioning must be 'fm' or 'ddpm', but got {conditioning!r}.")
        D = num_hiddens
        self.in_channels = in_channels
        self.num_hiddens = num_hiddens
        self.conditioning = conditioning
        self.conv_in = ConvBlock(in_channels, D)
        self.down1 = DownBlock(D, D)
        self.down2 = DownBlock(D, 2 * D)
        self.flatten = Flatten()
        self.unflatten = Unflatten(2 * D)
        self.up1 = UpBlock(4 * D, D)
        self.up2 = UpBlock(2 * D, D)
        self.conv_out = ConvBlock(2 * D, D)
        self.head = nn.Conv2d(D, in_channels, kernel_size=3, stride=1, padding=1)
        self.concat = Concat()
        self.fc1_t = FCBlock(1, 2 * D)
        self.fc2_t = FCBlock(1, D)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        check_digits(x, self.in_channels)
        N = x.shape[0]
        t = time_column(t, N, x)  # (N, 1)
        t1 = self.fc1_t(t).reshape(N, -1, 1, 1)  # (N, 2D, 1, 1)
        t2 = self.fc2_t(t).reshape(N, -1, 1, 1)  # (N, D, 1, 1)
        e1 = self.conv_in(x)  # (N, D, 28, 28)
        e2 = self.down1(e1)  # (N, D, 14, 14)
        e3 = self.down2(e2)  # (N, 2D, 7, 7)
        u0 = self.unflatten(self.flatten(e3))  # (N, 2D, 7, 7)
        u0 = u0 * t1 if self.conditioning == "fm" else u0 + t1  # injection point 1
        u1 = self.up1(self.concat(e3, u0))  # (N, D, 14, 14)
        u1 = u1 * t2 if self.conditioning == "fm" else u1 + t2  # injection point 2
        u2 = self.up2(self.concat(e2, u1))  # (N, D, 28, 28)
        return self.head(self.conv_out(self.concat(e1, u2)))  # (N, in, 28, 28)


class ClassConditionalUNet(nn.Module):
    """UNet conditioned on a class and a time: forward(x, c, t, mask=None) → (N, in, 28, 28).

    x: (N, in, 28, 28); c: one-hot float (N, num_classes), the zero vector meaning "no class";
    t: (N,) or (N, 1) in [0, 1]; mask: optional (N,), 0 drops the sample's class (c ← c · mask).
    Same submodules as :class:`TimeConditionalUNet` plus fc1_c FCBlock(num_classes, 2D) and
    fc2_c FCBlock(num_classes, D). With c1, c2 = fc1_c(c), fc2_c(c) and t1, t2 = fc1_t(t), fc2_t(t):
        unflatten = c1 * unflatten + t1;   up1 = c2 * up1 + t2
    for both ``conditioning`` kinds: the FA24 DDPM and FA25 flow-matching pages print the same class
    modulation (class scales, time shifts). ``conditioning`` only records which algorithm the network
    is trained for.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, num_hiddens: int = 64, conditioning: str = "fm"):
        super().__init__()
        if conditioning not in ("fm", "ddpm"):
            raise ValueError(f"conditioning must be 'fm' or 'ddpm', but got {conditioning!r}.")
        D = num_hiddens
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.num_hiddens = num_hiddens
        self.conditioning = conditioning
        self.conv_in = ConvBlock(in_channels, D)
        self.down1 = DownBlock(D, D)
        self.down2 = DownBlock(D, 2 * D)
        self.flatten = Flatten()
        self.unflatten = Unflatten(2 * D)
        self.up1 = UpBlock(4 * D, D)
        self.up2 = UpBlock(2 * D, D)
        self.conv_out = ConvBlock(2 * D, D)
        self.head = nn.Conv2d(D, in_channels, kernel_size=3, stride=1, padding=1)
        self.concat = Concat()
        self.fc1_t = FCBlock(1, 2 * D)
        self.fc2_t = FCBlock(1, D)
        self.fc1_c = FCBlock(num_classes, 2 * D)
        self.fc2_c = FCBlock(num_classes, D)

    def forward(self, x: torch.Tensor, c: torch.Tensor, t: torch.Tensor, mask: torch.Tensor | None = None):
        check_digits(x, self.in_channels)
        N = x.shape[0]
        check_tensor(c, "c")
        if tuple(c.shape) != (N, self.num_classes):
            raise ValueError(
                f"c must be one-hot vectors of shape ({N}, {self.num_classes}) (use one_hot(labels)), "
                f"but has shape {tuple(c.shape)}."
            )
        if mask is not None:
            mask = torch.as_tensor(mask, device=c.device)
            if mask.shape not in ((N,), (N, 1)):
                raise ValueError(f"mask must have shape ({N},), but has shape {tuple(mask.shape)}.")
            c = c * mask.reshape(N, 1).to(c.dtype)  # 0 = drop the class
        t = time_column(t, N, x)  # (N, 1)
        c1 = self.fc1_c(c).reshape(N, -1, 1, 1)  # (N, 2D, 1, 1)
        c2 = self.fc2_c(c).reshape(N, -1, 1, 1)  # (N, D, 1, 1)
        t1 = self.fc1_t(t).reshape(N, -1, 1, 1)  # (N, 2D, 1, 1)
        t2 = self.fc2_t(t).reshape(N, -1, 1, 1)  # (N, D, 1, 1)
        e1 = self.conv_in(x)  # (N, D, 28, 28)
        e2 = self.down1(e1)  # (N, D, 14, 14)
        e3 = self.down2(e2)  # (N, 2D, 7, 7)
        u0 = c1 * self.unflatten(self.flatten(e3)) + t1  # injection point 1: (N, 2D, 7, 7)
        u1 = c2 * self.up1(self.concat(e3, u0)) + t2  # injection point 2: (N, D, 14, 14)
        u2 = self.up2(self.concat(e2, u1))  # (N, D, 28, 28)
        return self.head(self.conv_out(self.concat(e1, u2)))  # (N, in, 28, 28)
