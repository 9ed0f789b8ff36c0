import pytest
import torch

from gifd.data import SAMPLE_IMAGES, load_images


def test_embedded_samples_need_no_files():
    s = load_images("samples", indices=range(len(SAMPLE_IMAGES)))
    assert s.images.shape == (10, 3, 32, 32)
    assert s.labels.tolist() == list(range(10))
    assert 0 <= s.images.min() and s.images.max() <= 1 and s.images.std() > 0.1
    assert s.task.num_classes == 10 and s.classes[0] == "chelsea"
    assert load_images("samples", indices=[2], image_size=64).images.shape == (1, 3, 64, 64)
    batches = s.batches(4)
    assert [b[0] for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_bad_data_requests_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'cifar100'"):
        load_images("cifar100")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_images("cifar10", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="needs data_root"):
        load_images("tinyimagenet")
    with pytest.raises(IndexError, match="index 12 is outside"):
        load_images("samples", indices=[12])
    with pytest.raises(FileNotFoundError, match="no CIFAR-10 found"):
        load_images("cifar10", tmp_path)
    with pytest.raises(FileNotFoundError, match="no MNIST test images"):
        load_images("mnist", tmp_path)


def test_imagefolder_order_and_resizing(tmp_path):
    from PIL import Image

    for cls, colour in (("b_blue", (0, 0, 255)), ("a_red", (255, 0, 0))):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.new("RGB", (40, 30), colour).save(tmp_path / cls / f"{i}.png")
    s = load_images("imagefolder", tmp_path, indices=[0, 3])
    assert s.classes == ["a_red", "b_blue"] and s.labels.tolist() == [0, 1]
    assert s.images.shape == (2, 3, 32, 32)
    assert s.images[0, 0].mean() == pytest.approx(1.0) and s.images[1, 2].mean() == pytest.approx(1.0)


def test_cifar10_from_the_shared_archive(shared_data):
    s = load_images("cifar10", shared_data / "cifar10_yoongikim" / "cifar10_jpg_q75_train_test.tar.gz",
                    indices=[0, 1000, 9999])  # fmt: skip
    assert s.labels.tolist() == [0, 1, 9] and s.classes[3] == "cat"
    assert s.images.shape == (3, 3, 32, 32)
    train = load_images("cifar10", shared_data / "cifar10_yoongikim" / "cifar10_jpg_q75_train_test.tar.gz",
                        indices=[49999], split="train")  # fmt: skip
    assert train.labels.tolist() == [9]


def test_tinyimagenet_and_mnist_from_shared(shared_data):
    t = load_images("tinyimagenet", shared_data / "tinyimagenet_rangeetpan" / "tiny_imagenet_val_wnids_words.tar.gz",
                    indices=[0, 1])  # fmt: skip
    assert t.images.shape == (2, 3, 64, 64) and t.task.image_shape == (3, 64, 64)
    assert len(t.classes) == t.task.num_classes
    m = load_images("mnist", shared_data / "mnist", indices=[0, 1, 2])
    assert m.labels.tolist() == [7, 2, 1] and m.images.shape == (3, 1, 32, 32)
    assert m.images[0].mean() < 0.3  # white digit on black


def test_loaded_images_feed_the_victim():
    from gifd.fl import client_update
    from gifd.models import make_model

    s = load_images("samples", indices=[0, 1])
    update = client_update(make_model("convnet", s.task.num_classes), s.task, s.images, s.labels)
    assert update.num_samples == 2 and all(torch.isfinite(t).all() for t in update.tensors)
