"""Before a Ray run starts: is Ray installed, and is there a cluster at the address given?

Both are one line (exit status 2 in the CLI) before anything is read or written: a missing extra names
``pip install 'headstart[ray]'``; an address where nothing answers is found with a plain TCP connect and a
timeout, instead of waiting on Ray's own retries.
"""

from __future__ import annotations

import importlib.util
import socket
from urllib.parse import urlsplit

from headstart.errors import UserError
from headstart.features.spec import EmbedOptions

__all__ = ["CONNECT_TIMEOUT_S", "RayUnavailable", "check_engine"]

CONNECT_TIMEOUT_S = 5.0


class RayUnavailable(UserError, RuntimeError):
    """``engine: ray`` without Ray installed, or with an address where no cluster answers."""


def check_engine(options: EmbedOptions) -> None:
    """Raise :class:`RayUnavailable` when ``options`` ask for Ray and it cannot run; nothing for the local engine."""
    if options.engine != "ray":
        return
    try:
        found = importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise RayUnavailable("the ray engine needs Ray, which is not installed here; `pip install 'headstart[ray]'`")
    address = options.ray.address
    if address in ("auto", "local", "") or address is None:
        return
    host, port = _host_port(address)
    if port is None:
        return
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise RayUnavailable(
            f"no Ray cluster answers at {address} ({reason}); start one there (`ray start --head`) or use "
            "--address auto"
        ) from err


def _host_port(address: str) -> tuple[str, int | None]:
    """``host:port`` or ``ray://host:port`` -> ``(host, port)``; ``port`` is ``None`` when there is none."""
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        return parts.hostname or "127.0.0.1", parts.port
    except ValueError:
        return address, None
