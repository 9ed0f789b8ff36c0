"""Client data: the embedded default, CIFAR-10, any ImageFolder tree, Tiny-ImageNet val and MNIST.

Every loader returns an :class:`ImageSet`: only the requested ``indices`` (dataset order), as ``[0, 1]``
tensors resized to the task's size, their labels, the class names and the :class:`~gifd.fl.FLTask` the
server knows. Nothing is ever downloaded; ``.tar.gz`` archives are extracted once into a cache
(``$GIFD_CACHE``, default ``~/.cache/gifd``).

* ``samples`` (default, no files needed): ten real photographs shipped by scikit-image, centre-cropped and
  resized, each its own class (``SAMPLE_IMAGES``).
* ``cifar10``: torchvision's ``cifar-10-batches-py`` folder, a JPEG tree with ``train/`` and ``test/`` class
  folders, or a ``.tar.gz`` of that tree.
* ``imagefolder``: any ``root/<class>/<image>`` tree, in torchvision's ImageFolder order.
* ``tinyimagenet``: ``tiny-imagenet-200`` (``val/images``, ``val/val_annotations.txt``, ``wnids.txt``) or a
  ``.tar.gz`` of it; labels index the sorted wnids. ``split="train"`` reads ``train/<wnid>/images/`` instead
  (class by class), for tuning on images that are never attacked.
* ``mnist``: the test idx files (``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]``), or the
  training ones with ``split="train"``; 28x28 digits resized to 32x32, one channel.

``split`` is ``test`` by default (Tiny-ImageNet: its val split); ``samples`` and ``imagefolder`` have none.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .fl import FLTask

__all__ = ["ImageSet", "load_images", "DATASETS", "SAMPLE_IMAGES", "cache_dir", "data_fingerprint"]

DATASETS = ("samples", "cifar10", "imagefolder", "tinyimagenet", "mnist")

CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
MNIST_STATS = ((0.1307,), (0.3081,))

#: the embedded default: scikit-image sample photographs (name, loader attribute), one class each
SAMPLE_IMAGES = (
    ("chelsea", "chelsea"),
    ("rocket", "rocket"),
    ("motorcycle", "stereo_motorcycle"),
    ("astronaut", "astronaut"),
    ("coffee", "coffee"),
    ("hubble", "hubble_deep_field"),
    ("ihc", "immunohistochemistry"),
    ("retina", "retina"),
    ("camera", "camera"),
    ("grass", "grass"),
)


@dataclass
class ImageSet:
    """Selected client images (``[0, 1]``, ``(N, C, H, W)``) with labels, class names and the task."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    indices: list[int]
    classes: list[str]
    task: FLTask

    def batches(self, batch_size: int) -> list[tuple[list[int], torch.Tensor, torch.Tensor]]:
        """Consecutive batches ``(dataset indices, images, labels)``; the last one may be smaller."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out = []
        for s in range(0, len(self.indices), batch_size):
            sl = slice(s, s + batch_size)
            out.append((self.indices[sl], self.images[sl], self.labels[sl]))
        return out


def cache_dir() -> Path:
    return Path(os.environ.get("GIFD_CACHE", Path.home() / ".cache" / "gifd"))


def _to_tensor(arr: np.ndarray, channels: int) -> torch.Tensor:
    """HxW or HxWxC uint8/float array -> (C, H, W) float in [0, 1]."""
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[..., None]
    a = a[..., :3] if a.shape[-1] >= 3 else a
    t = torch.from_numpy(np.array(a, copy=True)).permute(2, 0, 1).float()
    if a.dtype == np.uint8:
        t = t / 255.0
    if t.shape[0] == 1 and channels == 3:
        t = t.expand(3, -1, -1)
    elif t.shape[0] == 3 and channels == 1:
        t = (0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2]).unsqueeze(0)
    return t


def _square_resize(t: torch.Tensor, size: int) -> torch.Tensor:
    _, h, w = t.shape
    s = min(h, w)
    t = t[:, (h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    if s == size:
        return t.clone()
    return F.interpolate(t[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0].clamp(
        0, 1
    )


def _check_indices(indices, n: int, name: str) -> list[int]:
    indices = [int(i) for i in indices]
    if not indices:
        raise ValueError("indices must name at least one image")
    bad = [i for i in indices if i < 0 or i >= n]
    if bad:
        raise IndexError(f"index {bad[0]} is outside {name} (it has {n} images)")
    return indices


def _root(data_root, dataset: str) -> Path:
    if data_root is None:
        raise ValueError(f"dataset {dataset!r} needs data_root (a folder or .tar.gz archive)")
    root = Path(data_root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"data root for {dataset!r} does not exist: {root}")
    if root.is_file() and root.name.endswith((".tar.gz", ".tgz", ".tar")):
        return _extract(root)
    return root


def _archive_id(archive: Path) -> str:
    """The archive's identity: its size and the sha256 of its first and last MiB (fast on large archives)."""
    import hashlib

    size = archive.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(archive, "rb") as f:
        h.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
            h.update(f.read())
    return h.hexdigest()[:12]


def data_fingerprint(data_root: str | os.PathLike) -> str:
    """What a data root holds, wherever it lies: for an archive or other file its :func:`_archive_id`, for a folder
    the sha256 of every file's relative path and size (cheap on extracted data sets of many files)."""
    import hashlib

    root = Path(data_root).expanduser()
    if root.is_file():
        return _archive_id(root)
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_size}\n".encode())
    return h.hexdigest()[:12]


def _extract(archive: Path) -> Path:
    """Extract ``archive`` once into the cache, in a folder named by the archive's name *and* content, so that
    another archive of the same name is never mistaken for it; a marker file says the extraction finished. An
    archive that cannot be read is an error naming it (nothing is marked complete)."""
    import zlib

    stem = archive.name.split(".tar")[0].removesuffix(".tgz")
    dest = cache_dir() / "data" / f"{stem}-{_archive_id(archive)}"
    marker = dest / ".complete"
    if marker.exists():
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(f"{archive} cannot be extracted as a .tar(.gz) archive: {err}") from None
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    marker.touch()
    return dest


def _read_image(path: Path, channels: int) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L" if channels == 1 else "RGB")
        return _to_tensor(np.asarray(im), channels)


def _samples(indices, size: int) -> tuple[list[torch.Tensor], list[int], list[str]]:
    import skimage.data

    names = [n for n, _ in SAMPLE_IMAGES]
    indices = _check_indices(indices, len(SAMPLE_IMAGES), "the embedded samples")
    imgs = []
    for i in indices:
        arr = getattr(skimage.data, SAMPLE_IMAGES[i][1])()
        if isinstance(arr, tuple):  # stereo pair: the left view
            arr = arr[0]
        imgs.append(_square_resize(_to_tensor(arr, 3), size))
    return imgs, indices, names


def _imagefolder(root: Path, indices, size: int, channels: int):
    from torchvision.datasets import ImageFolder

    try:
        ds = ImageFolder(str(root))
    except (FileNotFoundError, RuntimeError) as err:
        raise FileNotFoundError(f"{root} is not an image-folder tree (root/<class>/<image>): {err}") from err
    indices = _check_indices(indices, len(ds.samples), str(root))
    imgs = [_square_resize(_read_image(Path(ds.samples[i][0]), channels), size) for i in indices]
    return imgs, [ds.samples[i][1] for i in indices], ds.classes, indices


def _cifar10(root: Path, indices, size: int, split: str):
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if (root / "cifar-10-batches-py").is_dir():
        from torchvision.datasets import CIFAR10

        ds = CIFAR10(str(root), train=split == "train", download=False)
        indices = _check_indices(indices, len(ds), "CIFAR-10")
        imgs = [_square_resize(_to_tensor(ds.data[i], 3), size) for i in indices]
        return imgs, [int(ds.targets[i]) for i in indices], list(ds.classes), indices
    for cand in (root / split, root / "cifar10" / split):
        if cand.is_dir():
            return _imagefolder(cand, indices, size, 3)
    raise FileNotFoundError(f"no CIFAR-10 found under {root}: expected cifar-10-batches-py/ or {split}/<class>/")


def _tinyimagenet(root: Path, indices, size: int, split: str):
    if split not in ("test", "val", "train"):
        raise ValueError(f"split must be 'val' (or 'test', the same) or 'train' for tinyimagenet, not {split!r}")
    base = root / "tiny-imagenet-200" if (root / "tiny-imagenet-200").is_dir() else root
    if split == "train":
        return _tinyimagenet_train(root, base, indices, size)
    ann = base / "val" / "val_annotations.txt"
    if not ann.is_file():
        raise FileNotFoundError(f"no Tiny-ImageNet validation set under {root}: missing {ann}")
    rows = [line.split("\t")[:2] for line in ann.read_text().splitlines() if line.strip()]
    rows.sort(key=lambda r: int(r[0].split("_")[1].split(".")[0]))  # val_0, val_1, ... order
    wnids = sorted({w for _, w in rows})
    names = _words(base)
    indices = _check_indices(indices, len(rows), "Tiny-ImageNet val")
    imgs = [_square_resize(_read_image(base / "val" / "images" / rows[i][0], 3), size) for i in indices]
    labels = [wnids.index(rows[i][1]) for i in indices]
    return imgs, labels, [names.get(w, w) for w in wnids], indices


def _words(base: Path) -> dict[str, str]:
    names = {}
    words = base / "words.txt"
    if words.is_file():
        for line in words.read_text().splitlines():
            k, _, v = line.partition("\t")
            names[k] = v.split(",")[0]
    return names


def _tinyimagenet_train(root: Path, base: Path, indices, size: int):
    """The training split: ``train/<wnid>/images/<wnid>_<n>.JPEG``, indexed class by class (sorted wnids,
    then ``n``), so index ``500 * k + n`` is image ``n`` of class ``k`` in the 500-per-class archive."""
    train = base / "train"
    if not train.is_dir():
        raise FileNotFoundError(f"no Tiny-ImageNet training split under {root}: missing {train}")
    wnids = sorted(d.name for d in train.iterdir() if (d / "images").is_dir())
    files = []
    for k, wnid in enumerate(wnids):
        found = sorted((train / wnid / "images").glob("*.JPEG"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
        files += [(p, k) for p in found]
    indices = _check_indices(indices, len(files), "Tiny-ImageNet train")
    imgs = [_square_resize(_read_image(files[i][0], 3), size) for i in indices]
    names = _words(base)
    return imgs, [files[i][1] for i in indices], [names.get(w, w) for w in wnids], indices


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\x00\x00" or data[2] != 8:
        raise ValueError(f"{path} is not an unsigned-byte idx file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _mnist(root: Path, indices, size: int, split: str):
    if split not in ("test", "train"):
        raise ValueError(f"split must be 'test' or 'train' for mnist, not {split!r}")
    prefix = "t10k" if split == "test" else "train"
    found = None
    for name in (f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-images-idx3-ubyte"):
        if (root / name).is_file():
            found = root / name
    if found is None:
        raise FileNotFoundError(f"no MNIST {split} images ({prefix}-images-idx3-ubyte[.gz]) under {root}")
    x = _read_idx(found)
    y = _read_idx(Path(str(found).replace("images-idx3", "labels-idx1")))
    indices = _check_indices(indices, len(x), "MNIST")
    imgs = [_square_resize(_to_tensor(x[i], 1), size) for i in indices]
    return imgs, [int(y[i]) for i in indices], [str(d) for d in range(10)], indices


def load_images(
    dataset: str = "samples",
    data_root: str | os.PathLike | None = None,
    indices=(0,),
    *,
    image_size: int | None = None,
    split: str = "test",
) -> ImageSet:
    """Load the client images ``indices`` of ``dataset`` (see the module docstring for the layouts)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {DATASETS}")
    if dataset in ("samples", "imagefolder") and split != "test":
        raise ValueError(f"dataset {dataset!r} has no splits: split must be 'test' (the default), not {split!r}")
    if dataset == "samples":
        size = image_size or 32
        imgs, indices, classes = _samples(indices, size)
        labels, stats, channels = list(indices), CIFAR10_STATS, 3
    elif dataset == "cifar10":
        size = image_size or 32
        imgs, labels, classes, indices = _cifar10(_root(data_root, dataset), indices, size, split)
        stats, channels = CIFAR10_STATS, 3
    elif dataset == "imagefolder":
        size = image_size or 32
        imgs, labels, classes, indices = _imagefolder(_root(data_root, dataset), indices, size, 3)
        stats, channels = CIFAR10_STATS, 3
    elif dataset == "tinyimagenet":
        size = image_size or 64
        imgs, labels, classes, indices = _tinyimagenet(_root(data_root, dataset), indices, size, split)
        stats, channels = IMAGENET_STATS, 3
    else:
        size = image_size or 32
        root = Path(data_root).expanduser() if data_root is not None else _root(None, dataset)
        if not root.exists():
            raise FileNotFoundError(f"data root for 'mnist' does not exist: {root}")
        imgs, labels, classes, indices = _mnist(root, indices, size, split)
        stats, channels = MNIST_STATS, 1
    task = FLTask(image_shape=(channels, size, size), num_classes=len(classes), mean=stats[0], std=stats[1])
    return ImageSet(dataset, torch.stack(imgs), torch.tensor(labels, dtype=torch.long), indices, classes, task)
