"""BigGAN-deep (Brock, Donahue, Simonyan, ICLR 2019) as a staged generator, in the key layout of the public
PyTorch port (``pytorch-pretrained-BigGAN``: ``embeddings.weight``, ``generator.gen_z.weight_orig``, ...,
``generator.layers.{i}...``, ``generator.bn``, ``generator.conv_to_rgb``). Our own modules; weights are
read from a local file the reader gives (never downloaded).

Stages (GIFD, ``GIFD_SPEC`` 4.5): stage 0 optimises ``z`` (128-d) with the class embedding fixed; at the end
of stage 0 the conditioning vector ``cat(z, embed(y))`` is frozen; stage ``k >= 1`` optimises the output of
module ``k-1`` of ``generator.layers`` (12 GenBlocks plus one self-attention module for 256x256: 13 stages).
The image is the model's ``[-1, 1]`` output resized (area) to ``output_size``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .base import StagedGenerator, State

__all__ = ["BigGANDeep", "BIGGAN_LAYERS", "load_biggan"]

_LAYERS_128 = [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 4),
               (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)]  # fmt: skip
_LAYERS_256 = [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 8),
               (False, 8, 4), (True, 4, 4), (False, 4, 2), (True, 2, 2), (False, 2, 1), (True, 1, 1)]  # fmt: skip
_LAYERS_512 = [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 8),
               (False, 8, 8), (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1),
               (False, 1, 1), (True, 1, 1)]  # fmt: skip
#: (upsample, in multiplier, out multiplier) per GenBlock, by output resolution (the public configs)
BIGGAN_LAYERS = {128: _LAYERS_128, 256: _LAYERS_256, 512: _LAYERS_512}


class _SpectralNormed(nn.Module):
    """A weight stored as ``weight_orig`` with power-iteration vectors ``weight_u``, ``weight_v`` (the layout
    of ``torch.nn.utils.spectral_norm``); evaluation divides by ``sigma = u . (W v)`` without iterating."""

    def __init__(self, shape: tuple[int, ...], bias: bool) -> None:
        super().__init__()
        self.weight_orig = nn.Parameter(torch.randn(shape) * 0.02)
        out, rest = shape[0], math.prod(shape[1:])
        # random weights get their leading singular vectors (a few power iterations), so sigma is sane
        w = self.weight_orig.detach().reshape(out, rest)
        v = F.normalize(torch.randn(rest), dim=0)
        for _ in range(10):
            u = F.normalize(w @ v, dim=0)
            v = F.normalize(w.t() @ u, dim=0)
        self.register_buffer("weight_u", u)
        self.register_buffer("weight_v", v)
        self.bias = nn.Parameter(torch.zeros(out)) if bias else None

    def weight(self) -> torch.Tensor:
        w = self.weight_orig
        sigma = torch.dot(self.weight_u, w.reshape(w.shape[0], -1) @ self.weight_v)
        return w / sigma


class SNLinear(_SpectralNormed):
    def __init__(self, cin: int, cout: int, bias: bool = True) -> None:
        super().__init__((cout, cin), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight(), self.bias)


class SNConv2d(_SpectralNormed):
    def __init__(self, cin: int, cout: int, k: int, bias: bool = True) -> None:
        super().__init__((cout, cin, k, k), bias)
        self.padding = k // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight(), self.bias, padding=self.padding)


class CondBatchNorm(nn.Module):
    """BigGAN's batch norm with stored statistics for 51 truncation values; conditional gain and bias."""

    def __init__(self, features: int, cond_dim: int | None, n_stats: int = 51, eps: float = 1e-4) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("running_means", torch.zeros(n_stats, features))
        self.register_buffer("running_vars", torch.ones(n_stats, features))
        self.step = 1.0 / (n_stats - 1)
        self.conditional = cond_dim is not None
        if self.conditional:
            self.scale = SNLinear(cond_dim, features, bias=False)
            self.offset = SNLinear(cond_dim, features, bias=False)
        else:
            self.weight = nn.Parameter(torch.ones(features))
            self.bias = nn.Parameter(torch.zeros(features))

    def forward(self, x: torch.Tensor, truncation: float, cond: torch.Tensor | None = None) -> torch.Tensor:
        coef, start = math.modf(truncation / self.step)
        start = int(start)
        mean, var = self.running_means[start], self.running_vars[start]
        if coef != 0.0:
            mean = mean * coef + self.running_means[start + 1] * (1 - coef)
            var = var * coef + self.running_vars[start + 1] * (1 - coef)
        x = (x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + self.eps)
        if self.conditional:
            return x * (1 + self.scale(cond))[..., None, None] + self.offset(cond)[..., None, None]
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class GenBlock(nn.Module):
    """BigGAN-deep residual block: BN-ReLU-1x1, BN-ReLU-(up)-3x3, BN-ReLU-3x3, BN-ReLU-1x1, plus skip."""

    def __init__(self, cin: int, cout: int, cond_dim: int, up: bool, n_stats: int = 51, eps: float = 1e-4):
        super().__init__()
        mid = cin // 4
        self.up = up
        self.drop = cin != cout
        self.bn_0, self.conv_0 = CondBatchNorm(cin, cond_dim, n_stats, eps), SNConv2d(cin, mid, 1)
        self.bn_1, self.conv_1 = CondBatchNorm(mid, cond_dim, n_stats, eps), SNConv2d(mid, mid, 3)
        self.bn_2, self.conv_2 = CondBatchNorm(mid, cond_dim, n_stats, eps), SNConv2d(mid, mid, 3)
        self.bn_3, self.conv_3 = CondBatchNorm(mid, cond_dim, n_stats, eps), SNConv2d(mid, cout, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, truncation: float) -> torch.Tensor:
        h = self.conv_0(F.relu(self.bn_0(x, truncation, cond)))
        h = F.relu(self.bn_1(h, truncation, cond))
        if self.up:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = self.conv_1(h)
        h = self.conv_2(F.relu(self.bn_2(h, truncation, cond)))
        h = self.conv_3(F.relu(self.bn_3(h, truncation, cond)))
        if self.drop:
            x = x[:, : x.shape[1] // 2]
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return h + x


class SelfAttn(nn.Module):
    """SAGAN self-attention (Zhang et al. 2019) with max-pooled keys and values."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.snconv1x1_theta = SNConv2d(c, c // 8, 1, bias=False)
        self.snconv1x1_phi = SNConv2d(c, c // 8, 1, bias=False)
        self.snconv1x1_g = SNConv2d(c, c // 2, 1, bias=False)
        self.snconv1x1_o_conv = SNConv2d(c // 2, c, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        theta = self.snconv1x1_theta(x).view(b, c // 8, h * w)
        phi = F.max_pool2d(self.snconv1x1_phi(x), 2).view(b, c // 8, h * w // 4)
        attn = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)
        g = F.max_pool2d(self.snconv1x1_g(x), 2).view(b, c // 2, h * w // 4)
        out = (g @ attn.transpose(1, 2)).view(b, c // 2, h, w)
        return x + self.gamma * self.snconv1x1_o_conv(out)


class _Generator(nn.Module):
    def __init__(self, layers, ch: int, z_dim: int, attention: int, n_stats: int, eps: float) -> None:
        super().__init__()
        cond_dim = 2 * z_dim
        self.ch = ch
        self.gen_z = SNLinear(cond_dim, 4 * 4 * 16 * ch)
        mods: list[nn.Module] = []
        for i, (up, cin, cout) in enumerate(layers):
            if i == attention:
                mods.append(SelfAttn(ch * cin))
            mods.append(GenBlock(ch * cin, ch * cout, cond_dim, up, n_stats, eps))
        self.layers = nn.ModuleList(mods)
        self.bn = CondBatchNorm(ch, None, n_stats, eps)
        self.conv_to_rgb = SNConv2d(ch, ch, 3)


class BigGANDeep(StagedGenerator):
    """BigGAN-deep generator, staged at the module boundaries of ``generator.layers``.

    Args:
        resolution: 128, 256 or 512 (picks the public layer configuration), or pass ``layers``.
        channel_width: 128 for the public models (small values for tests).
        num_classes: 1000 for ImageNet.
        output_size: the FL image size; the output is area-resized to it (``None``: native resolution).
        truncation: BatchNorm statistics index (1.0 as in GIFD).
    """

    def __init__(self, resolution: int = 256, *, channel_width: int = 128, num_classes: int = 1000,
                 z_dim: int = 128, layers=None, attention_layer_position: int = 8, n_stats: int = 51,
                 eps: float = 1e-4, output_size: int | None = None, truncation: float = 1.0) -> None:  # fmt: skip
        super().__init__()
        layers = layers or BIGGAN_LAYERS.get(resolution)
        if layers is None:
            raise ValueError(f"no BigGAN-deep configuration for resolution {resolution}; use 128, 256 or 512")
        self.embeddings = nn.Linear(num_classes, z_dim, bias=False)
        self.generator = _Generator(layers, channel_width, z_dim, attention_layer_position, n_stats, eps)
        self.num_classes, self.z_dim, self.truncation = num_classes, z_dim, truncation
        self.resolution = 4 * 2 ** sum(1 for up, _, _ in layers if up)
        self.output_size = output_size or self.resolution
        self.image_shape = (3, self.output_size, self.output_size)
        self.num_stages = len(self.generator.layers)

    # -- the staged interface ------------------------------------------------------------------------------
    def initial_state(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> State:
        z = torch.randn((labels.shape[0], self.z_dim), generator=generator).to(labels.device)
        return {"z": z, "y": self.conditioning(labels)}

    def _cond(self, state: State) -> torch.Tensor:
        if "cond" in state:
            return state["cond"]
        return torch.cat([state["z"], self.embeddings(state["y"])], dim=1)

    def _module(self, i: int, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        layer = self.generator.layers[i]
        return layer(x, cond, self.truncation) if isinstance(layer, GenBlock) else layer(x)

    def _stem(self, cond: torch.Tensor) -> torch.Tensor:
        g = self.generator
        return g.gen_z(cond).view(-1, 4, 4, 16 * g.ch).permute(0, 3, 1, 2).contiguous()

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        g = self.generator
        x = g.conv_to_rgb(F.relu(g.bn(x, self.truncation)))[:, :3]
        img = torch.tanh(x)
        if self.output_size != self.resolution:
            img = F.interpolate(img, size=(self.output_size, self.output_size), mode="area")
        return img

    def render(self, stage: int, state: State) -> torch.Tensor:
        self.check_stage(stage)
        cond = self._cond(state)
        x = self._stem(cond) if stage == 0 else state["h"]
        for i in range(stage, self.num_stages):
            x = self._module(i, x, cond)
        return self._head(x)

    def advance(self, stage: int, state: State) -> State:
        self.check_stage(stage)
        if stage + 1 >= self.num_stages:
            raise ValueError(f"stage {stage} is the last of {self.num_stages}")
        with torch.no_grad():
            cond = self._cond(state)
            x = self._stem(cond) if stage == 0 else state["h"]
            h = self._module(stage, x, cond)
        out = {k: v.detach() for k, v in state.items()}
        out.update(cond=cond.detach(), h=h.detach())  # the conditioning vector is frozen after stage 0
        return out

    def forward(self, z: torch.Tensor, class_vector: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        """The public port's call: ``G(z, one_hot, truncation)`` -> image in [-1, 1] (resized)."""
        if truncation is not None:
            self.truncation = truncation
        return self.render(0, {"z": z, "y": class_vector})


def load_biggan(path: str | Path, resolution: int | None = None, output_size: int | None = None) -> BigGANDeep:
    """Load biggan-deep weights from a local file in the public port's key layout.

    ``path`` is the weights file (``pytorch_model.bin`` / ``.pt`` / ``.safetensors``) or a folder holding it
    and, optionally, the port's ``config.json`` (which then gives the resolution and layer list).
    """
    from ..models import load_checkpoint, load_state_dict_checked

    path = Path(path)
    config: dict = {}
    if path.is_dir():
        if (path / "config.json").is_file():
            config = json.loads((path / "config.json").read_text())
        candidates = [path / n for n in ("pytorch_model.bin", "model.safetensors", "model.pt")]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise FileNotFoundError(f"no BigGAN weights (pytorch_model.bin, model.safetensors) in {path}")
        path = found[0]
    state = load_checkpoint(path)
    resolution = resolution or config.get("output_dim")
    if resolution is None:
        ups = {int(k.split(".")[2]) for k in state if k.startswith("generator.layers.") and ".bn_0." in k}
        resolution = {10: 128, 12: 256, 14: 512}.get(len(ups))
        if resolution is None:
            raise ValueError(f"{path}: cannot tell the BigGAN resolution from {len(ups)} blocks; pass resolution")
    model = BigGANDeep(
        resolution,
        channel_width=config.get("channel_width", 128),
        num_classes=config.get("num_classes", 1000),
        z_dim=config.get("z_dim", 128),
        layers=[tuple(x) for x in config["layers"]] if "layers" in config else None,
        attention_layer_position=config.get("attention_layer_position", 8),
        n_stats=config.get("n_stats", 51),
        eps=config.get("eps", 1e-4),
        output_size=output_size,
    )
    load_state_dict_checked(model, state, what=str(path))
    return model.eval()
