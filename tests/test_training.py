"""The GAN training loop: a run resumes from its full checkpoint or, on a fresh machine, from the committed copy
(networks in fp16, no Adam states), continuing the iteration count with the copy's weights."""

import copy

import torch

from gifd.generators.dcgan64 import ConditionalDCGAN64, ProjectionDiscriminator
from gifd.generators.training import load_checkpoint, train_gan


def _nets(seed):
    torch.manual_seed(seed)
    G = ConditionalDCGAN64(num_classes=3, latent_dim=8, width=4)
    return G, ProjectionDiscriminator(num_classes=3, width=4), copy.deepcopy(G)


def test_the_committed_copy_holds_the_networks_only_and_a_fresh_machine_resumes_from_it(tmp_path, capsys):
    x = torch.randint(0, 256, (6, 3, 64, 64), dtype=torch.uint8)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    small_path = tmp_path / "commit" / "checkpoint_fp16.pt"
    train_gan(*_nets(0), x, y, tmp_path / "a", 2, batch_size=2, every=2, copy=small_path)
    full, small = load_checkpoint(tmp_path / "a" / "checkpoint.pt"), torch.load(small_path, weights_only=True)
    assert {"opt_g", "opt_d"} <= set(full) and not {"opt_g", "opt_d"} & set(small)
    assert small["iteration"] == 2 and all(t.dtype == torch.float16 for t in small["G"].values() if t.dim())
    assert small_path.stat().st_size < (tmp_path / "a" / "checkpoint.pt").stat().st_size / 3

    G, D, G_ema = _nets(1)  # a fresh machine: other initial weights, no out/checkpoint.pt
    train_gan(G, D, G_ema, x, y, tmp_path / "b", 2, batch_size=2, every=2, copy=small_path)  # nothing to train
    out = capsys.readouterr().out
    assert "resumed at iteration 2 from" in out and "(networks only: Adam restarts)" in out
    assert all(torch.equal(G_ema.state_dict()[k].half(), t) for k, t in small["G_ema"].items() if t.dim())
    train_gan(G, D, G_ema, x, y, tmp_path / "b", 4, batch_size=2, every=2, copy=small_path)  # two more, then saved
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["iteration"] == 4
