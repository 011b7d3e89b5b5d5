"""Models that channel pruning breaks where torch-pruning cannot see it (shared by the never-broken and probe tests)."""

from __future__ import annotations

import torch
from torch import nn


class FixedView(nn.Module):
    """Reshapes to a channel count stored when built: nothing tells it the channels were pruned."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x):
        return x.reshape(x.shape[0], self.channels, -1).amax(-1)


class OneFixedView(nn.Module):
    """Two convs; the second one's channels feed a :class:`FixedView`."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 32, 3, padding=1), nn.Conv2d(32, 32, 3, padding=1)
        self.view, self.head = FixedView(32), nn.Linear(32, 4)

    def forward(self, x):
        return self.head(self.view(torch.relu(self.c2(torch.relu(self.c1(x))))))
