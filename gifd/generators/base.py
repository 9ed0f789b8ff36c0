"""The staged-generator interface: the one thing GIFD needs from a GAN.

A generator is split into ``num_stages`` stages. Its *state* is a dict of tensors with a leading batch
dimension: stage 0's state holds the latent (and class conditioning, noise, ... where the model has them);
:meth:`advance` runs block ``k`` without gradient and returns stage ``k+1``'s state, whose ``"h"`` entry is the
intermediate feature map that GIFD optimises next. :meth:`render` produces the image from any stage's state,
so rendering stage ``k+1``'s state after :meth:`advance` gives the image of rendering stage ``k``'s state.

To bring your own generator, subclass :class:`StagedGenerator` (see :class:`SequentialStaged` for a module
split into a list of blocks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["StagedGenerator", "SequentialStaged", "State"]

State = dict[str, torch.Tensor]


class StagedGenerator(nn.Module):
    """Abstract staged generator. Images are ``(B, C, H, W)`` in ``[-1, 1]``."""

    #: number of stages (stage 0 optimises the latent, stage k >= 1 the output of block k-1)
    num_stages: int = 1
    #: number of classes for conditioning (0 for unconditional models)
    num_classes: int = 0
    #: image shape produced by render
    image_shape: tuple[int, int, int] = (3, 32, 32)

    def initial_state(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> State:
        """Stage 0's state for a batch (one entry per label; unconditional models ignore the values)."""
        raise NotImplementedError

    def render(self, stage: int, state: State) -> torch.Tensor:
        """The image generated from stage ``stage``'s state (differentiable in its variables)."""
        raise NotImplementedError

    def advance(self, stage: int, state: State) -> State:
        """Stage ``stage + 1``'s state: the output of block ``stage`` as ``"h"``, computed without gradient."""
        raise NotImplementedError

    def variables(self, stage: int) -> tuple[str, ...]:
        """Names of the state entries optimised at ``stage`` (``("z",)`` at stage 0, ``("h",)`` after)."""
        return ("z",) if stage == 0 else ("h",)

    def conditioning(self, labels: torch.Tensor) -> torch.Tensor:
        """Class indices ``(B,)`` -> one-hot vectors (checked against ``num_classes``); soft class vectors
        ``(B, C)`` (label mapping) pass through."""
        if labels.dim() != 1:
            return labels.float()
        if (labels < 0).any() or (labels >= self.num_classes).any():
            raise ValueError(f"generator labels must lie in [0, {self.num_classes})")
        return nn.functional.one_hot(labels, self.num_classes).float()

    def check_stage(self, stage: int) -> None:
        if not 0 <= stage < self.num_stages:
            raise ValueError(f"stage must be in [0, {self.num_stages}), got {stage}")


class SequentialStaged(StagedGenerator):
    """Bring your own generator: any model written as ``head(block_{n-1}(... block_0(input(z, y))))``.

    Args:
        make_input: ``(z, y_onehot) -> tensor`` fed to the first block (e.g. concatenation, a linear map).
        blocks: the ordered blocks; stage ``k >= 1`` optimises the output of ``blocks[k-1]``.
        head: maps the last block's output to an image in ``[-1, 1]``.
        latent_dim: size of ``z`` (drawn from N(0, I)).
        num_classes: classes for the one-hot conditioning ``y`` (0: unconditional).
        image_shape: the rendered image's shape.

    Example::

        >>> G = SequentialStaged(lambda z, y: z.view(-1, 64, 1, 1), [up1, up2, up3], to_rgb, latent_dim=64)
    """

    def __init__(
        self,
        make_input: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
        blocks: Sequence[nn.Module],
        head: nn.Module,
        *,
        latent_dim: int,
        num_classes: int = 0,
        image_shape: tuple[int, int, int] = (3, 32, 32),
    ) -> None:
        super().__init__()
        self.make_input = make_input
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.image_shape = image_shape
        self.num_stages = len(self.blocks)

    def initial_state(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> State:
        z = torch.randn((labels.shape[0], self.latent_dim), generator=generator).to(labels.device)
        return {"z": z, "y": self.conditioning(labels)} if self.num_classes else {"z": z}

    def _run(self, x: torch.Tensor, start: int) -> torch.Tensor:
        for block in self.blocks[start:]:
            x = block(x)
        return self.head(x)

    def render(self, stage: int, state: State) -> torch.Tensor:
        self.check_stage(stage)
        if stage == 0:
            return self._run(self.make_input(state["z"], state.get("y")), 0)
        return self._run(state["h"], stage)

    def advance(self, stage: int, state: State) -> State:
        self.check_stage(stage)
        if stage + 1 >= self.num_stages:
            raise ValueError(f"stage {stage} is the last of {self.num_stages}")
        with torch.no_grad():
            x = self.make_input(state["z"], state.get("y")) if stage == 0 else state["h"]
            h = self.blocks[stage](x)
        return {**{k: v.detach() for k, v in state.items()}, "h": h.detach()}
