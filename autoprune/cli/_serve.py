"""Running a small HTTP server from the command line until Ctrl-C (agent and report share it)."""

from __future__ import annotations

from typing import Callable, Protocol

from ..exceptions import ConfigError

__all__ = ["serve_until_interrupted"]


class _Server(Protocol):
    url: str

    def bind(self) -> None: ...
    def serve_forever(self) -> None: ...
    def shutdown(self) -> None: ...


def serve_until_interrupted(server: _Server, address: str, banner: Callable[[str], str]) -> int:
    """Bind (a busy port is a one-line :class:`ConfigError`), print ``banner(url)``, serve until Ctrl-C."""
    try:
        server.bind()
    except OSError as e:
        raise ConfigError(f"cannot listen on {address}: {e.strerror or e}") from None
    print(banner(server.url), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return 0
