"""Reading the IDX files of (Fashion-)MNIST: the original format, gzip-compressed.

An IDX file is a 4-byte magic (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the values. Only unsigned bytes (type 0x08) occur
in MNIST-style data sets, and only those are accepted. Every defect (missing file, short
or truncated gzip, bad magic, wrong counts) is a :class:`~autoprune.exceptions.ConfigError`
whose one line names the file.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..exceptions import ConfigError

__all__ = ["read_idx", "IDXError"]

_UBYTE = 0x08


class IDXError(ConfigError):
    """An IDX file is missing or malformed (the message names it)."""


def read_idx(path: str | os.PathLike, ndim: int, shape_tail: tuple[int, ...] = ()) -> np.ndarray:
    """The uint8 array stored in gzip-compressed IDX file ``path``.

    Args:
        path: A ``*-idx?-ubyte.gz`` file.
        ndim: Expected number of dimensions (1 for labels, 3 for images).
        shape_tail: Expected sizes of every dimension but the first (``(28, 28)`` for images).

    Raises:
        IDXError: the file is missing, not gzip, truncated, or its header does not describe
            its contents.
    """
    path = Path(path)
    if not path.is_file():
        raise IDXError(f"{path}: file not found")
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise IDXError(f"{path}: not a complete gzip file ({e})") from None
    if len(data) < 4:
        raise IDXError(f"{path}: {len(data)} bytes, too short for an IDX header")
    zero, dtype, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != _UBYTE or dims != ndim:
        raise IDXError(f"{path}: bad IDX magic {data[:4].hex()} (expected 0000{_UBYTE:02x}{ndim:02x}: unsigned bytes, {ndim} dimension(s))")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if shape_tail and tuple(shape[1:]) != tuple(shape_tail):
        raise IDXError(f"{path}: items of shape {tuple(shape[1:])}, expected {tuple(shape_tail)}")
    n = int(np.prod(shape))
    if len(data) - header != n:
        raise IDXError(f"{path}: header says {shape[0]} items ({n} bytes), the file holds {len(data) - header} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)
