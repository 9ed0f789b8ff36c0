"""A StyleGAN2 (config-f) generator in plain PyTorch, split into resolution stages for GIFD.

The network is that of Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020:
a mapping MLP (pixel norm, ``n_mlp`` equalised-learning-rate linear layers with ``lr_mul = 0.01`` and a
scaled leaky ReLU) turns ``z`` into ``w``; the synthesis network starts from a learned constant 4x4 input and
applies, per resolution, two weight-(de)modulated 3x3 convolutions (the first upsamples by a transposed
convolution followed by a [1, 3, 3, 1] blur), per-pixel noise injection and a bias + leaky ReLU, plus a
non-demodulated 1x1 ``ToRGB`` whose output is added to the upsampled RGB *skip* image of the previous resolution.

Everything is written from scratch for this project with ordinary ``torch`` operations (CPU and GPU, no
custom CUDA kernels): the modulated convolutions use the usual grouped-convolution trick (one group per
sample) and :func:`upfirdn2d` (upsample by zero insertion, pad, FIR filter, downsample) is a reshape, pad and
depthwise ``conv2d``. No NVIDIA code is included. Only the *parameter layout* follows an existing
implementation: the module names, parameter shapes and buffers are those of the public PyTorch port by
Kim Seonghyeon ("rosinality/stylegan2-pytorch", ``Generator(size, 512, 8, channel_multiplier=2)``, as stored
under the ``g_ema`` key of its checkpoints), so that weights converted or trained with that port can be read
from a path the user gives (:func:`load_stylegan2`; nothing is downloaded). The layer-to-latent indexing of
its ``W+`` forward pass is reproduced exactly as well.

GIFD stages (Fang et al., ICCV 2023) are the resolution blocks: block 0 is the constant input + ``conv1`` +
``to_rgb1`` (4x4) and block ``b >= 1`` the two styled convolutions and the ``ToRGB`` at resolution
``2 ** (b + 2)``, so there are ``log2(size) - 1`` stages. The state holds

* ``"z"``: the ``W+`` latent ``(B, n_latent, style_dim)`` (stage 0 draws it from the "gaussian fit" of the
  mapping network's output in the leaky-ReLU-inverted space, as PULSE and GIFD do),
* ``"noise_0"`` ... ``"noise_{L-1}"``: per-sample noise maps ``(B, 1, r, r)``,
* from stage 1 on, ``"h"`` (the feature map entering block ``stage``) and ``"skip"`` (the accumulated RGB
  image of block ``stage - 1``), so that ``render(s + 1, advance(s, state)) == render(s, state)``.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .base import StagedGenerator, State

__all__ = [
    "StyleGAN2Generator",
    "load_stylegan2",
    "upfirdn2d",
    "make_blur_kernel",
    "default_channels",
]

SQRT2 = math.sqrt(2.0)


# ---------------------------------------------------------------------------------------------------------------------
# building blocks


def upfirdn2d(
    x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)
) -> torch.Tensor:
    """Upsample (zero insertion), pad, FIR-filter and downsample each channel of ``x`` ``(B, C, H, W)``.

    ``pad = (p0, p1)`` pads both spatial axes by ``p0`` before and ``p1`` after (negative values crop). The
    filter is a true convolution with ``kernel`` (``conv2d`` with the flipped kernel). Output size per axis:
    ``(H * up + p0 + p1 - k) // down + 1``.
    """
    b, c, h, w = x.shape
    kh, kw = kernel.shape
    p0, p1 = pad
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))  # zeros after each sample, along W then H
        x = x.reshape(b, c, h * up, w * up)
    x = F.pad(x, (max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)))
    hh, ww = x.shape[-2:]
    x = x[..., max(-p0, 0) : hh - max(-p1, 0), max(-p0, 0) : ww - max(-p1, 0)]
    weight = torch.flip(kernel, (0, 1)).to(x.device, x.dtype).reshape(1, 1, kh, kw).expand(c, 1, kh, kw)
    x = F.conv2d(x, weight, groups=c)
    if down > 1:
        x = x[..., ::down, ::down]
    return x


def make_blur_kernel(taps: tuple[float, ...] | list[float] = (1, 3, 3, 1), gain: float = 1.0) -> torch.Tensor:
    """The separable 2-D FIR kernel ``outer(taps, taps)``, normalised to sum 1, times ``gain``."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[:, None] * k[None, :]
    return k / k.sum() * gain


def default_channels(channel_multiplier: int = 2) -> dict[int, int]:
    """Feature channels per resolution of config-f (as in the rosinality port)."""
    cm = channel_multiplier
    return {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm, 1024: 16 * cm}


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor, slope: float = 0.2, gain: float = SQRT2) -> torch.Tensor:
    """``leaky_relu(x + bias, slope) * gain`` with ``bias`` broadcast along dimension 1."""
    shape = [1, -1] + [1] * (x.dim() - 2)
    return F.leaky_relu(x + bias.reshape(shape), slope) * gain


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: ``y = x (W * scale)^T + b * lr_mul`` (optionally activated)."""

    def __init__(
        self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0, activation: bool = False
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class Blur(nn.Module):
    def __init__(self, pad: tuple[int, int], gain: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("kernel", make_blur_kernel(gain=gain))
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """2x upsampling with the [1, 3, 3, 1] filter (output exactly twice the input size)."""

    def __init__(self, factor: int = 2) -> None:
        super().__init__()
        self.register_buffer("kernel", make_blur_kernel(gain=factor**2))
        self.factor = factor
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)  # (2, 1) for factor 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class ModulatedConv2d(nn.Module):
    """Weight-modulated (and optionally demodulated) convolution, optionally upsampling by 2.

    The style ``s = modulation(w)`` scales the input channels of the weight; demodulation rescales each output
    filter to unit norm per sample. Implemented as one grouped convolution with a group per sample. The
    upsampling variant is a stride-2 transposed convolution followed by a [1, 3, 3, 1] blur.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.demodulate = demodulate
        self.upsample = upsample
        if upsample:
            factor, taps = 2, 4
            # the stride-2 transposed conv gives 2H + k - 2 (2H + 1 for k = 3); the 4-tap blur padded by
            # (1, 1) then brings it to exactly 2H
            p = (taps - factor) - (kernel_size - 1)
            self.blur = Blur(pad=((p + 1) // 2 + factor - 1, p // 2 + 1), gain=factor**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        b, cin, h, wd = x.shape
        cout, k = self.out_channels, self.kernel_size
        style = self.modulation(w).reshape(b, 1, cin, 1, 1)
        weight = self.scale * self.weight * style  # (B, out, in, k, k)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        x = x.reshape(1, b * cin, h, wd)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(b * cin, cout, k, k)
            out = F.conv_transpose2d(x, weight, stride=2, padding=0, groups=b)
            out = self.blur(out.reshape(b, cout, *out.shape[-2:]))
        else:
            out = F.conv2d(x, weight.reshape(b * cout, cin, k, k), padding=k // 2, groups=b)
            out = out.reshape(b, cout, *out.shape[-2:])
        return out


class NoiseInjection(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = x.new_empty(x.shape[0], 1, *x.shape[-2:]).normal_()
        return x + self.weight * noise


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class StyledConv(nn.Module):
    """Modulated 3x3 conv (optionally upsampling) + noise + bias and leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, upsample: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, style_dim, demodulate=True, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, w), noise))


class ToRGB(nn.Module):
    """Non-demodulated 1x1 modulated conv to RGB, plus the (upsampled) skip image of the previous resolution."""

    def __init__(self, in_channels: int, style_dim: int, upsample: bool = True) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(2)
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, w) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class ConstantInput(nn.Module):
    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.expand(batch, -1, -1, -1)


# ---------------------------------------------------------------------------------------------------------------------
# the generator


class StyleGAN2Generator(StagedGenerator):
    """StyleGAN2 config-f generator (rosinality key layout) as a GIFD staged generator.

    Args:
        size: output resolution of the network (a power of two >= 8).
        style_dim: size of ``z`` and ``w`` (512 in config-f).
        n_mlp: number of mapping layers (8 in config-f).
        channel_multiplier: 2 in config-f (scales the channels at 64 px and above).
        channels: optional override of the channels per resolution (e.g. ``{r: 16 for r in ...}`` for tests);
            missing resolutions fall back to :func:`default_channels`.
        output_size: side of the rendered image (area-downsampled, or bilinearly upsampled, from ``size``);
            defaults to ``size``.
        fit_samples: number of ``z`` samples for the gaussian fit of the mapping network (default 10**5).
        fit_seed: seed of those samples.
        fit_cache: optional file where the gaussian fit is stored (``torch.save``) and read back
            (``torch.load(weights_only=True)``); it is recomputed when it does not match the weights.

    ``forward(w_plus, noise)`` runs the whole synthesis network; :meth:`mapping` is the mapping MLP.
    """

    num_classes = 0

    def __init__(
        self,
        size: int = 1024,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        channels: dict[int, int] | None = None,
        *,
        output_size: int | None = None,
        fit_samples: int = 10**5,
        fit_seed: int = 0,
        fit_cache: str | Path | None = None,
    ) -> None:
        super().__init__()
        log_size = int(round(math.log2(size)))
        if size < 8 or 2**log_size != size:
            raise ValueError(f"size must be a power of two >= 8, got {size}")
        self.size, self.style_dim, self.n_mlp = size, style_dim, n_mlp
        self.log_size = log_size
        self.num_layers = (log_size - 2) * 2 + 1
        self.n_latent = log_size * 2 - 2
        self.channels = {**default_channels(channel_multiplier), **(channels or {})}
        ch = self.channels

        self.style = nn.Sequential(
            PixelNorm(), *[EqualLinear(style_dim, style_dim, lr_mul=0.01, activation=True) for _ in range(n_mlp)]
        )
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], style_dim)
        self.to_rgb1 = ToRGB(ch[4], style_dim, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        cin = ch[4]
        for i in range(3, log_size + 1):
            cout = ch[2**i]
            self.convs.append(StyledConv(cin, cout, style_dim, upsample=True))
            self.convs.append(StyledConv(cout, cout, style_dim))
            self.to_rgbs.append(ToRGB(cout, style_dim))
            cin = cout
        self.noises = nn.Module()
        for k in range(self.num_layers):
            r = self.noise_resolution(k)
            self.noises.register_buffer(f"noise_{k}", torch.randn(1, 1, r, r))

        self.output_size = size if output_size is None else int(output_size)
        self.image_shape = (3, self.output_size, self.output_size)
        self.num_stages = log_size - 1
        self.fit_samples, self.fit_seed = int(fit_samples), int(fit_seed)
        self.fit_cache = None if fit_cache is None else Path(fit_cache)
        self._fit: dict[str, torch.Tensor] | None = None  # in-memory cache (not a buffer: keeps the key layout)

    # ----- plain network -----

    @staticmethod
    def noise_resolution(k: int) -> int:
        return 2 ** ((k + 5) // 2)

    @property
    def noise_keys(self) -> tuple[str, ...]:
        return tuple(f"noise_{k}" for k in range(self.num_layers))

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """``w = mapping(z)`` for ``z`` of shape ``(..., style_dim)``."""
        shape = z.shape
        return self.style(z.reshape(-1, shape[-1])).reshape(shape)

    def _block(
        self, b: int, w: torch.Tensor, noise: list[torch.Tensor | None], h: torch.Tensor | None, skip: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run resolution block ``b`` (W+ indexing of the rosinality forward pass)."""
        if b == 0:
            out = self.conv1(self.input(w.shape[0]), w[:, 0], noise[0])
            return out, self.to_rgb1(out, w[:, 1])
        i = 2 * b - 1
        out = self.convs[2 * b - 2](h, w[:, i], noise[2 * b - 1])
        out = self.convs[2 * b - 1](out, w[:, i + 1], noise[2 * b])
        return out, self.to_rgbs[b - 1](out, w[:, i + 2], skip)

    def _check_w(self, w: torch.Tensor) -> None:
        if w.dim() != 3 or w.shape[1:] != (self.n_latent, self.style_dim):
            raise ValueError(f"W+ latent must have shape (B, {self.n_latent}, {self.style_dim}), got {tuple(w.shape)}")

    def synthesize(
        self,
        w: torch.Tensor,
        noise: list[torch.Tensor | None] | None = None,
        start: int = 0,
        h: torch.Tensor | None = None,
        skip: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Image at the network's resolution from W+ ``w``, starting at block ``start`` from ``h`` and ``skip``."""
        self._check_w(w)
        noise = [None] * self.num_layers if noise is None else list(noise)
        for b in range(start, self.num_stages):
            h, skip = self._block(b, w, noise, h, skip)
        return skip

    def forward(self, w: torch.Tensor, noise: list[torch.Tensor | None] | None = None) -> torch.Tensor:
        """Full synthesis from a W+ latent ``(B, n_latent, style_dim)`` (or ``w`` of shape ``(B, style_dim)``).

        ``noise``: one tensor per layer, or ``None`` for fresh random noise (pass ``stored_noise()`` for the
        checkpoint's fixed noise).
        """
        if w.dim() == 2:
            w = w[:, None].expand(-1, self.n_latent, -1)
        return self.synthesize(w, noise)

    def stored_noise(self) -> list[torch.Tensor]:
        return [getattr(self.noises, key) for key in self.noise_keys]

    # ----- gaussian fit of the mapping network -----

    def _fingerprint(self) -> torch.Tensor:
        with torch.no_grad():
            return torch.stack([p.detach().double().sum().cpu() for p in self.style.parameters()])

    def _fit_matches(self, fit: object) -> bool:
        if not isinstance(fit, dict) or not {"mean", "std", "fingerprint", "num_samples", "seed"} <= set(fit):
            return False
        fp = fit["fingerprint"]
        own = self._fingerprint()
        return (
            isinstance(fp, torch.Tensor)
            and fp.shape == own.shape
            and bool(torch.allclose(fp.double(), own, rtol=1e-9, atol=0.0))
            and int(fit["num_samples"]) == self.fit_samples
            and int(fit["seed"]) == self.fit_seed
            and tuple(fit["mean"].shape) == (self.style_dim,)
            and tuple(fit["std"].shape) == (self.style_dim,)
        )

    def gaussian_fit(self) -> dict[str, torch.Tensor]:
        """Per-dimension mean and std of ``leaky_relu(mapping(z), 5)``, ``z ~ N(0, I)`` (cached).

        Computed once per set of mapping weights from ``fit_samples`` samples drawn with ``fit_seed``; kept in
        memory and, where ``fit_cache`` is set, in that file.
        """
        if self._fit is not None and self._fit_matches(self._fit):
            return self._fit
        if self.fit_cache is not None and self.fit_cache.is_file():
            fit = torch.load(self.fit_cache, map_location="cpu", weights_only=True)
            if self._fit_matches(fit):
                self._fit = fit
                return fit
        device = self.input.input.device
        gen = torch.Generator().manual_seed(self.fit_seed)
        total = torch.zeros(self.style_dim, dtype=torch.float64)
        total_sq = torch.zeros(self.style_dim, dtype=torch.float64)
        n, chunk = self.fit_samples, 10_000
        if n < 2:
            raise ValueError("fit_samples must be >= 2")
        with torch.no_grad():
            for start in range(0, n, chunk):
                m = min(chunk, n - start)
                z = torch.randn((m, self.style_dim), generator=gen).to(device)
                v = F.leaky_relu(self.mapping(z), 5.0).double().cpu()
                total += v.sum(0)
                total_sq += v.pow(2).sum(0)
        mean = total / n
        var = (total_sq - n * mean.pow(2)) / (n - 1)  # unbiased, as torch.std
        fit = {
            "mean": mean.float(),
            "std": var.clamp_min(0).sqrt().float(),
            "fingerprint": self._fingerprint(),
            "num_samples": torch.tensor(n),
            "seed": torch.tensor(self.fit_seed),
        }
        self._fit = fit
        if self.fit_cache is not None:
            self.fit_cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save(fit, self.fit_cache)
        return fit

    # ----- staged interface -----

    def _noise_of_block(self, b: int) -> tuple[int, ...]:
        return (0,) if b == 0 else (2 * b - 1, 2 * b)

    def variables(self, stage: int) -> tuple[str, ...]:
        """``("z", noise keys)`` at stage 0, ``("z", noise keys, "h")`` after.

        From stage 1 on only the noise maps of the blocks still run (``stage`` onwards) are listed: the others
        no longer affect the image.
        """
        self.check_stage(stage)
        keys = tuple(f"noise_{k}" for b in range(stage, self.num_stages) for k in self._noise_of_block(b))
        return ("z", *keys) if stage == 0 else ("z", *keys, "h")

    def initial_state(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> State:
        """W+ ``leaky_relu(std * u + mean, 0.2)``, ``u ~ N(0, I)``, and N(0, 1) noise maps (labels: batch size)."""
        batch = labels.shape[0]
        device = self.input.input.device
        fit = self.gaussian_fit()
        u = torch.randn((batch, self.n_latent, self.style_dim), generator=generator)
        z = F.leaky_relu(u * fit["std"] + fit["mean"], 0.2)
        state = {"z": z.to(device)}
        for k in range(self.num_layers):
            r = self.noise_resolution(k)
            state[f"noise_{k}"] = torch.randn((batch, 1, r, r), generator=generator).to(device)
        return state

    def _noise_list(self, state: State) -> list[torch.Tensor | None]:
        return [state.get(key) for key in self.noise_keys]

    def _resize(self, img: torch.Tensor) -> torch.Tensor:
        if self.output_size == img.shape[-1]:
            return img
        if self.output_size < img.shape[-1]:
            return F.interpolate(img, size=(self.output_size, self.output_size), mode="area")
        return F.interpolate(img, size=(self.output_size, self.output_size), mode="bilinear", align_corners=False)

    def render(self, stage: int, state: State) -> torch.Tensor:
        self.check_stage(stage)
        noise = self._noise_list(state)
        if stage == 0:
            img = self.synthesize(state["z"], noise)
        else:
            img = self.synthesize(state["z"], noise, start=stage, h=state["h"], skip=state["skip"])
        return self._resize(img)

    def advance(self, stage: int, state: State) -> State:
        self.check_stage(stage)
        if stage + 1 >= self.num_stages:
            raise ValueError(f"stage {stage} is the last of {self.num_stages}")
        self._check_w(state["z"])
        with torch.no_grad():
            h, skip = self._block(stage, state["z"], self._noise_list(state), state.get("h"), state.get("skip"))
        return {**{k: v.detach() for k, v in state.items()}, "h": h.detach(), "skip": skip.detach()}


# ---------------------------------------------------------------------------------------------------------------------
# loading


def _read_checkpoint(path: Path) -> dict:
    from ..models import load_checkpoint

    # checkpoints written by the port's train.py also pickle their argparse options
    return load_checkpoint(path, safe_globals=(argparse.Namespace,))


def load_stylegan2(
    path: str | Path,
    size: int | None = None,
    channel_multiplier: int = 2,
    output_size: int | None = None,
    **kwargs,
) -> StyleGAN2Generator:
    """Build a :class:`StyleGAN2Generator` from a rosinality-layout checkpoint at ``path`` (read safely).

    The ``g_ema`` entry is used where present (else the file must be the generator's state dict itself).
    ``size`` is inferred from the largest noise buffer (or the number of ``to_rgbs``) when not given;
    ``style_dim`` and ``n_mlp`` are read from the mapping layers. Other keyword arguments go to the
    constructor (``fit_samples``, ``fit_cache``, ...). A missing, unexpected or mis-shaped key raises a
    ``ValueError`` naming it.
    """
    from ..models import load_state_dict_checked

    path = Path(path)
    ckpt = _read_checkpoint(path)
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: not a state dict")
    state = ckpt.get("g_ema", ckpt)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: 'g_ema' is not a state dict")
    state = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if size is None:
        noise = [v.shape[-1] for k, v in state.items() if re.fullmatch(r"noises\.noise_\d+", k)]
        rgbs = {int(m.group(1)) for k in state if (m := re.match(r"to_rgbs\.(\d+)\.", k))}
        if noise:
            size = int(max(noise))
        elif rgbs:
            size = 2 ** (max(rgbs) + 3)
        else:
            raise ValueError(f"{path}: cannot infer the resolution (no 'noises.*' or 'to_rgbs.*' keys)")
    mlp = [int(m.group(1)) for k in state if (m := re.fullmatch(r"style\.(\d+)\.weight", k))]
    if "n_mlp" not in kwargs and mlp:
        kwargs["n_mlp"] = max(mlp)
    if "style_dim" not in kwargs and "style.1.weight" in state:
        kwargs["style_dim"] = int(state["style.1.weight"].shape[0])
    model = StyleGAN2Generator(size, channel_multiplier=channel_multiplier, output_size=output_size, **kwargs)
    load_state_dict_checked(model, state, what=str(path))
    return model
