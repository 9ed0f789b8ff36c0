"""Victim models of the federated task: the classifiers whose shared updates are attacked.

* ``resnet18``: the CIFAR-style ResNet-18 of the GIFD paper (3x3 stride-1 stem, no max-pool, BasicBlocks
  [2, 2, 2, 2], widths 64-512, adaptive average pool, one linear head), as in ``inversefed/nn/models.py``.
* ``convnet``: a small four-layer ConvNet (fast tests and demos).
* ``lenet``: LeNet-5 (two 5x5 convolutions with sigmoid-free ReLU, three linear layers), for MNIST-sized input.
* ``tv:<name>``: any torchvision classifier by name (e.g. ``tv:resnet50``), randomly initialised.

Every model is built by :func:`make_model` from a seed, optionally loaded from a local checkpoint (read with
``weights_only=True`` or safetensors), and put in BatchNorm ``eval`` or ``train`` mode.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = ["make_model", "ResNet18", "ConvNet", "LeNet", "MODEL_NAMES", "load_state_dict_checked"]

MODEL_NAMES = ("resnet18", "convnet", "lenet")


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR-style ResNet-18 (He et al. 2016) as used by GIFD/GIAS/IG: 3x3 stem, no max-pool."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, cin = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            cout = width * 2**i
            layers.append(nn.Sequential(_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


class ConvNet(nn.Module):
    """A small ConvNet: three conv-BN-ReLU stages with pooling, then a linear head."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1),
        )  # fmt: skip
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


class LeNet(nn.Module):
    """LeNet-5 (LeCun et al. 1998) for 32x32 input, ReLU activations, max-pooling."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != 32 or x.shape[-2] != 32:
            raise ValueError(f"LeNet expects 32x32 input, got {tuple(x.shape[-2:])}")
        return self.classifier(self.features(x))


def _torchvision_model(name: str, num_classes: int, in_channels: int) -> nn.Module:
    import torchvision

    try:
        builder = torchvision.models.get_model_builder(name)
    except ValueError as err:
        raise ValueError(f"unknown torchvision classifier {name!r}") from err
    model = builder(weights=None, num_classes=num_classes)
    if in_channels != 3:
        raise ValueError(f"torchvision model {name!r} takes 3 input channels, not {in_channels}")
    return model


def load_state_dict_checked(model: nn.Module, state: dict[str, torch.Tensor], what: str = "checkpoint") -> None:
    """Load ``state`` into ``model`` strictly; the first missing, unexpected or mis-shaped key is named."""
    own = model.state_dict()
    for key, value in own.items():
        if key not in state:
            raise ValueError(f"{what}: missing key {key!r} (expected shape {tuple(value.shape)})")
        if tuple(state[key].shape) != tuple(value.shape):
            raise ValueError(
                f"{what}: key {key!r} has shape {tuple(state[key].shape)}, the model expects {tuple(value.shape)}"
            )
    extra = [k for k in state if k not in own]
    if extra:
        raise ValueError(f"{what}: unexpected key {extra[0]!r}")
    model.load_state_dict(state, strict=True)


def load_checkpoint(path: str | Path, safe_globals: tuple = ()) -> dict[str, torch.Tensor]:
    """Read a state dict from a local file without unpickling code (safetensors or ``weights_only=True``;
    ``safe_globals``: plain classes a checkpoint format is known to pickle beside its tensors). A file that is
    neither is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise ValueError(f"{path} is not a readable safetensors file ({err})") from None
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # not a zip or legacy torch file, or one that pickles code: pickle/zip/key errors
        first = str(err).splitlines()[0] if str(err) else ""
        raise ValueError(f"{path} is not a PyTorch checkpoint of tensors that can be read without unpickling code "
                         f"({type(err).__name__}: {first})") from None  # fmt: skip
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict")
    return state


def make_model(
    name: str = "resnet18",
    num_classes: int = 10,
    *,
    in_channels: int = 3,
    seed: int | None = 0,
    checkpoint: str | Path | None = None,
    bn_mode: str = "eval",
) -> nn.Module:
    """Build a victim model.

    Args:
        name: ``resnet18``, ``convnet``, ``lenet`` or ``tv:<torchvision name>``.
        num_classes: size of the linear head.
        in_channels: image channels (1 for MNIST).
        seed: seed of the random initialisation (``None``: torch's current state).
        checkpoint: optional local state dict (safetensors or a plain ``torch.save`` of tensors).
        bn_mode: ``"eval"`` (BatchNorm uses running statistics, the GIFD setting) or ``"train"``.
    """
    if bn_mode not in ("eval", "train"):
        raise ValueError(f"bn_mode must be 'eval' or 'train', not {bn_mode!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if seed is not None:
        torch.manual_seed(seed)
    if name == "resnet18":
        model: nn.Module = ResNet18(num_classes, in_channels)
    elif name == "convnet":
        model = ConvNet(num_classes, in_channels)
    elif name == "lenet":
        model = LeNet(num_classes, in_channels)
    elif name.startswith("tv:"):
        model = _torchvision_model(name[3:], num_classes, in_channels)
    else:
        raise ValueError(f"unknown model {name!r}; choose one of {MODEL_NAMES} or 'tv:<torchvision name>'")
    if checkpoint is not None:
        load_state_dict_checked(model, load_checkpoint(checkpoint), what=str(checkpoint))
    model.train(bn_mode == "train")
    return model
