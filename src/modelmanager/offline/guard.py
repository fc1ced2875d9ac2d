"""Always offline: the libraries' offline switches and a process-wide network guard (R-NET-1/2, D7).

There is no ``offline=`` switch: a :class:`~modelmanager.ModelManager` installs
the guard when it is made, for the rest of the process.

1. The offline switches of the model libraries are set (``HF_HUB_OFFLINE``,
   ``TRANSFORMERS_OFFLINE``, ``HF_DATASETS_OFFLINE``, …), so a library imported
   after this refuses to download by itself. A library imported earlier has
   read its switch already: the guard below catches it instead.
2. A :func:`sys.addaudithook` hook sees every ``socket.connect``,
   ``socket.getaddrinfo``, ``socket.gethostbyname`` (DNS) and ``socket.sendto``
   of Python code and lets through only loopback, Unix sockets, and the hosts
   allowed with :func:`allow` (the Triton endpoints of a mapping, the run
   index database). Anything else raises :class:`NetworkAccessBlocked`, which is
   **not** an ``OSError``: no library's retry-on-connection-error swallows it.
   Each refusal is also recorded (what, where from) for the run's manifest.

Known limit: gRPC's C core opens its own sockets, which audit hooks do not
see; the only gRPC client here is tritonclient, bound to the mapping's
endpoints. A Python-level guard cannot stop native code that bypasses Python.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
import sysconfig
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from modelmanager.errors import NetworkAccessBlocked

__all__ = [
    "OFFLINE_ENV",
    "BlockedAttempt",
    "allow",
    "blocked_attempts",
    "host_of",
    "install",
    "installed",
    "refusal_in",
]

logger = logging.getLogger(__name__)

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "DIFFUSERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "DO_NOT_TRACK": "1",
    "WANDB_MODE": "offline",
    "GRADIO_ANALYTICS_ENABLED": "False",
}
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_HF_HOST = "huggingface.co"


@dataclass(frozen=True, slots=True)
class BlockedAttempt:
    """One refused network access: what was tried, to where, and from which code."""

    event: str
    host: str
    port: int | None
    origin: str
    at: float

    def __str__(self) -> str:
        where = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"network access blocked: {self.event} {where} from {self.origin}"


class _Guard:
    def __init__(self) -> None:
        self.names: set[str] = set(_LOOPBACK_NAMES)
        self.ips: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
        self.blocked: list[BlockedAttempt] = []
        self.lock = threading.Lock()
        self.installed = False

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        # Called for every audit event of the process: keep the common case one test.
        if not event.startswith("socket."):
            return
        if event == "socket.connect":
            sock, address = args
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                self.check(event, address[0], address[1])
        elif event == "socket.getaddrinfo":
            self.check(event, args[0], args[1])
        elif event in ("socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr"):
            self.check(event, args[0], None)
        elif event == "socket.sendto":
            sock, address = args
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                self.check(event, address[0], address[1])

    def check(self, event: str, host: Any, port: Any) -> None:
        if host is None:
            return  # a passive/local lookup (bind), not a destination
        name = host.decode() if isinstance(host, bytes) else str(host)
        if self.allowed(name):
            return
        attempt = BlockedAttempt(
            event=event,
            host=name,
            port=port if isinstance(port, int) else None,
            origin=_origin(),
            at=time.time(),
        )
        with self.lock:
            self.blocked.append(attempt)
        logger.warning("%s", attempt)
        raise NetworkAccessBlocked(
            f"{attempt}: the model system is offline; only loopback and the mapping's "
            "Triton endpoints may be reached",
            host=attempt.host,
            port=attempt.port,
            event=event,
            origin=attempt.origin,
        )

    def allowed(self, name: str) -> bool:
        lowered = name.lower().rstrip(".")
        if lowered in self.names or lowered == "":
            return True
        try:
            ip = ipaddress.ip_address(lowered.split("%", 1)[0])
        except ValueError:
            return False
        return ip.is_loopback or ip in self.ips or ip.is_unspecified


_guard = _Guard()


def install() -> None:
    """Set the offline switches and install the guard (idempotent; for the whole process)."""
    for name, value in OFFLINE_ENV.items():
        os.environ[name] = value
    with _guard.lock:
        if _guard.installed:
            return
        _guard.installed = True
    sys.addaudithook(_guard.hook)
    logger.debug("network guard installed")


def installed() -> bool:
    """Whether this process has the guard."""
    return _guard.installed


def allow(hosts: Iterable[str]) -> None:
    """Let the guard through to ``hosts`` (names or addresses) and what they resolve to.

    For the mapping's Triton endpoints and the run index database. Names are
    resolved once, now (their lookup is allowed since the name is).
    """
    for host in hosts:
        name = host.lower().rstrip(".")
        if not name or _guard.allowed(name):
            continue
        try:
            _guard.ips.add(ipaddress.ip_address(name))
            continue
        except ValueError:
            _guard.names.add(name)
        try:
            infos = socket.getaddrinfo(name, None)
        except OSError:
            continue  # unresolvable now; connecting will say so
        for info in infos:
            _guard.ips.add(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))


def host_of(url: str) -> str | None:
    """The host of a URL or a ``host:port`` address, or None."""
    target = url if "://" in url else f"//{url}"
    return urlsplit(target).hostname


def blocked_attempts() -> list[BlockedAttempt]:
    """Every refusal so far in this process, oldest first."""
    with _guard.lock:
        return list(_guard.blocked)


def refusal_in(exc: BaseException) -> NetworkAccessBlocked | None:
    """The offline refusal behind ``exc``, if any: ours (perhaps wrapped by a library), else a
    model library's own refusal under its offline switch (e.g. ``HF_HUB_OFFLINE``).
    """
    chain = _chain(exc)
    for current in chain:
        if isinstance(current, NetworkAccessBlocked):
            return current
    for current in chain:
        if _is_hf_offline_refusal(current):
            host = host_of(os.environ.get("HF_ENDPOINT", "")) or _HF_HOST
            return NetworkAccessBlocked(
                f"network access blocked: {type(current).__name__} from a Hugging Face library "
                f"under HF_HUB_OFFLINE (it would reach {host}): {current}",
                host=host,
                event="HF_HUB_OFFLINE",
                origin=_traceback_origin(exc),
            )
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _is_hf_offline_refusal(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    if not module.startswith(("huggingface_hub", "transformers", "diffusers", "datasets")) and not (
        isinstance(exc, OSError) and "offline" in str(exc).lower()
    ):
        return False
    name = type(exc).__name__
    return (
        name == "OfflineModeIsEnabled"
        or "offline" in str(exc).lower()
        or (name == "LocalEntryNotFoundError")
    )


_LIBRARY_DIRS = tuple(
    os.path.normcase(p)
    for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
)
_THIS = os.path.normcase(__file__)


def _origin() -> str:
    """The first frame outside the standard library, installed packages and this module."""
    frame = sys._getframe(2)
    fallback = None
    while frame is not None:
        filename = os.path.normcase(frame.f_code.co_filename)
        if filename != _THIS:
            where = f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
            fallback = fallback or where
            if not filename.startswith(_LIBRARY_DIRS) and not filename.startswith("<"):
                return where
        frame = frame.f_back  # type: ignore[assignment]
    return fallback or "?"


def _traceback_origin(exc: BaseException) -> str:
    tb = exc.__traceback__
    origin = "?"
    while tb is not None:
        filename = os.path.normcase(tb.tb_frame.f_code.co_filename)
        if not filename.startswith(_LIBRARY_DIRS):
            origin = (
                f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno} in {tb.tb_frame.f_code.co_name}"
            )
        tb = tb.tb_next
    return origin
