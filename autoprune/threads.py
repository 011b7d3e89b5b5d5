"""torch's thread count, pinned wherever a result must not depend on the machine.

torch splits reductions (a convolution's backward pass, a matmul) over its intra-op threads,
so the float sums come out in an order that depends on how many threads there are: the same
fine-tuning on 1 and on 2 threads gives different weights, hence a different artifact. With
the count pinned, the result is the same on any machine with the same instruction set,
whatever its core count (more threads than cores is slower, never different).

* Training a built-in task's base model runs on :data:`TRAINING_THREADS` threads.
* Building a study's candidates runs on the thread count of the machine that created the
  study, recorded in the study (``build_threads``) and in exported plans, so a worker, the
  confirmation pass, ``export`` and ``apply`` on another machine rebuild the same bytes.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

__all__ = ["TRAINING_THREADS", "torch_threads"]

TRAINING_THREADS = 2


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with torch on ``n`` intra-op threads (None: as it is), then restore the count."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
