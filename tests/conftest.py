from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "gifd_data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/gifd_data is not present (only developers and CI have it)")
    return SHARED


@pytest.fixture
def tiny_setup():
    """A tiny ConvNet victim on 3x16x16 images with 5 classes, and a FedSGD update of 2 images."""
    from gifd.fl import FLTask, client_update
    from gifd.models import make_model

    task = FLTask(image_shape=(3, 16, 16), num_classes=5, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    model = make_model("convnet", 5, seed=0)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 16, 16, generator=g)
    labels = torch.tensor([1, 3])
    update = client_update(model, task, images, labels)
    return task, model, images, labels, update
