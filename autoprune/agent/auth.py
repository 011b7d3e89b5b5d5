"""Reading the shared bearer token from a file or an environment variable (never from YAML)."""

from __future__ import annotations

import logging
import os
import stat

from ..exceptions import ConfigError

__all__ = ["read_token"]

log = logging.getLogger("autoprune.agent")


def read_token(token_file: str | os.PathLike | None = None, token_env: str | None = None, what: str = "agent token") -> str | None:
    """The token from ``token_env`` if set there, else from ``token_file``; None when neither is named.

    Raises:
        ConfigError: a named source is missing, unreadable or empty (the message names it).
    """
    if token_env:
        value = os.environ.get(token_env)
        if value is not None and value.strip():
            return value.strip()
        if not token_file:
            raise ConfigError(f"{what}: environment variable {token_env} is not set (or empty)")
    if not token_file:
        return None
    path = os.path.expanduser(str(token_file))
    try:
        mode = os.stat(path).st_mode
        with open(path, encoding="utf-8") as f:
            value = f.read().strip()
    except OSError as e:
        raise ConfigError(f"{what}: cannot read token file {path}: {e.strerror or e}") from None
    if not value:
        raise ConfigError(f"{what}: token file {path} is empty")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("token file %s is readable by group/others; chmod 600 it", path)
    return value
