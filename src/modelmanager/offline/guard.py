"""Always offline: the libraries' offline switches and a process-wide network guard (R-NET-1/2, D7).

There is no ``offline=`` switch: a :class:`~modelmanager.ModelManager` installs
the guard when it is made, for the rest of the process.

1. The environment is made offline (:data:`OFFLINE_ENV`): the offline switches
   of the model libraries (``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``, …), so
   a library imported after this refuses to download by itself (a library
   imported earlier has read its switch already: the guard below catches it);
   ``no_proxy=*``; and :data:`GUARD_ENV` for the children (4.). The proxy
   variables (``http_proxy``, ``https_proxy``, ``all_proxy``, … in any case) are
   removed: a proxy on loopback is a loopback connection the guard lets
   through, and it would carry the request out. Nothing is restored: the
   process stays offline for its life.
2. A :func:`sys.addaudithook` hook sees every ``socket.connect``, ``sendto``
   and ``sendmsg``, every lookup (``getaddrinfo``, ``gethostbyname``) and
   reverse lookup (``gethostbyaddr``, ``getnameinfo``) of Python code and lets
   through only loopback (every port), Unix sockets, and what :func:`allow`
   allowed: the mapping's Triton endpoints (only their ``host:port``) and the
   run index's database host. Setting a proxy variable later is refused too.
   Anything else raises :class:`NetworkAccessBlocked`, which is **not** an
   ``OSError``: no library's retry-on-connection-error swallows it. Each
   refusal is also recorded (what, where from) for the run's manifest.
3. Starting a program is refused the same way (``subprocess``, ``os.system``,
   ``os.exec*``, ``os.posix_spawn``, ``os.spawn*``): ``curl`` or a shell could
   reach anything, out of the hook's sight. Allowed are: our own local
   ``tritonserver``, inside :func:`allow_child_process` (which
   :class:`~modelmanager.triton.server.TritonServer` uses around its start; a
   caller may use it the same way for a program it vouches for); three probes
   of this machine, exact command lines: ``uname -p``
   (``platform.processor()``), ``ldconfig -p`` (``ctypes.util.find_library``),
   ``lscpu`` (``numpy.testing``, at import); and Python children (4.). Any
   other program a library runs is refused, with :class:`NetworkAccessBlocked`
   like the rest, which is not the ``OSError`` a probe for a missing tool
   expects: a compiler (``torch.compile``'s inductor, Triton's JIT), or a probe
   this list lacks, needs :func:`allow_child_process` around its call.
4. A Python child (this interpreter, or a script whose ``#!`` names it, as the
   ``modelmanager`` console script) inherits the guard: its environment gets
   ``MODELMANAGER_OFFLINE_GUARD=1`` (added to the ``env`` given to
   ``subprocess``; ``os.exec*``/``os.posix_spawn`` with an ``env`` that lacks it
   are refused, since it is read before the hook sees the call), and importing
   :mod:`modelmanager.offline` in a process with that variable installs the
   guard (:func:`install_if_inherited`): every module that reaches a model, a
   runtime or the run index imports it. ``multiprocessing`` children (``spawn``,
   ``forkserver``) inherit the environment the same way; ``fork`` children
   inherit the hook itself.

   Why an environment variable read at import, against the rule of reading
   settings only when asked: a hook cannot follow a new interpreter, and the
   other ways to run code in every child (``sitecustomize``, a ``.pth`` file,
   ``PYTHONSTARTUP``, a ``PYTHONWARNINGS`` category import) change every
   interpreter of the environment or depend on interpreter flags. The variable
   reaches only the children of a guarded process.

Known limits: a Python child that never imports :mod:`modelmanager.offline` (a
``multiprocessing`` worker whose target does not, ``python -m pip``) runs
unguarded. gRPC's C core opens its own sockets, which audit hooks do not see;
the only gRPC client here is tritonclient, bound to the mapping's endpoints. A
proxy given explicitly (``proxies=``) on loopback is a loopback connection. A
child started from native code, by ``multiprocessing`` with an executable set to
another program, or after ``os.fork()`` (its ``os.exec*`` is refused in the
child, which records it there) is not seen or not recorded here. A
Python-level guard cannot stop native code that bypasses Python.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shlex
import socket
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from modelmanager.errors import NetworkAccessBlocked

__all__ = [
    "GUARD_ENV",
    "OFFLINE_ENV",
    "BlockedAttempt",
    "allow",
    "allow_child_process",
    "blocked_attempts",
    "endpoint_of",
    "host_of",
    "install",
    "install_if_inherited",
    "installed",
    "refusal_in",
]

logger = logging.getLogger(__name__)

GUARD_ENV = "MODELMANAGER_OFFLINE_GUARD"
"""Set to ``1`` in a guarded process, so that its Python children install the guard too."""

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
    "no_proxy": "*",
    "NO_PROXY": "*",
    GUARD_ENV: "1",
}
"""The environment of a guarded process (its proxy variables are removed besides)."""

# Lower-cased; matched in any case. grpc_proxy: gRPC's C core, whose sockets the hook cannot see.
_PROXY_VARS = frozenset(
    f"{scheme}_proxy" for scheme in ("http", "https", "all", "ftp", "ws", "wss", "socks", "grpc")
)
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_HF_HOST = "huggingface.co"
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Probes of this machine that common libraries run (platform.processor(),
# ctypes.util.find_library, numpy.testing at import): exact argv, from a system directory.
_PROBES = frozenset({("uname", "-p"), ("ldconfig", "-p"), ("lscpu",)})
_SYSTEM_DIRS = ("/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/")
_COMMAND_CHARS = 300

_IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_Host = str | _IP


@dataclass(frozen=True, slots=True)
class BlockedAttempt:
    """One refused access: what was tried, to where (or which program), and from which code."""

    event: str
    host: str | None
    port: int | None
    origin: str
    at: float
    detail: str | None = None
    """The command line of a refused program, or the proxy variable refused."""

    def __str__(self) -> str:
        where = " ".join(
            part
            for part in (
                None if self.host is None else _joined(self.host, self.port),
                None if self.detail is None else f"({self.detail})",
            )
            if part
        )
        return f"network access blocked: {self.event} {where} from {self.origin}"


class _Guard:
    def __init__(self) -> None:
        self.any_port: set[_Host] = set()  # a host alone: every port (the run index database)
        self.endpoints: set[tuple[_Host, int]] = set()  # host:port (the mapping's Triton)
        self.lookups: set[_Host] = set()  # every host above, for (reverse) lookups
        self.blocked: list[BlockedAttempt] = []
        self.lock = threading.Lock()
        self.local = threading.local()  # .executables: allow_child_process() of this thread
        self.installed = False
        self._python: frozenset[str] | None = None
        self._handlers: dict[str, Callable[[str, tuple[Any, ...]], None]] = {
            "socket.connect": self._on_send,
            "socket.sendto": self._on_send,
            "socket.sendmsg": self._on_send,
            "socket.getaddrinfo": self._on_lookup,
            "socket.gethostbyname": self._on_lookup,
            "socket.gethostbyname_ex": self._on_lookup,
            "socket.gethostbyaddr": self._on_lookup,
            "socket.getnameinfo": self._on_getnameinfo,
            "os.putenv": self._on_putenv,
            "subprocess.Popen": self._on_popen,
            "os.system": self._on_system,
            "os.exec": self._on_exec,
            "os.posix_spawn": self._on_exec,
            "os.spawn": self._on_spawn,
            "os.fork": self._on_fork,
        }

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        # Called for every audit event of the process: keep the common case one lookup.
        handler = self._handlers.get(event)
        if handler is not None:
            handler(event, args)

    # -- sockets -----------------------------------------------------------------------------

    def _on_send(self, event: str, args: tuple[Any, ...]) -> None:
        sock, address = args
        if address is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            self.check(event, address[0], address[1])

    def _on_lookup(self, event: str, args: tuple[Any, ...]) -> None:
        # getaddrinfo's port is named in a refusal, but a lookup sends nothing to it.
        self.check(event, args[0], args[1] if event == "socket.getaddrinfo" else None, True)

    def _on_getnameinfo(self, event: str, args: tuple[Any, ...]) -> None:
        self.check(event, args[0][0], args[0][1], True)

    def check(self, event: str, host: Any, port: Any, lookup: bool = False) -> None:
        if host is None:
            return  # a passive/local lookup (bind), not a destination
        name = host.decode() if isinstance(host, bytes) else str(host)
        port = port if isinstance(port, int) else None
        if not self.allowed(name, None if lookup else port):
            self.refuse(
                event,
                name,
                port,
                "only loopback and the mapping's Triton endpoints may be reached",
            )

    def allowed(self, name: str, port: int | None = None) -> bool:
        """Whether ``name`` may be reached on ``port``; ``None``: looked up (any port)."""
        lowered = name.lower().rstrip(".")
        if lowered == "" or lowered in _LOOPBACK_NAMES:
            return True
        key = _host_key(lowered)
        if not isinstance(key, str) and (key.is_loopback or key.is_unspecified):
            return True
        if port is None:
            return key in self.lookups
        return key in self.any_port or (key, port) in self.endpoints

    def allow(self, host: str, port: int | None) -> None:
        name = host.lower().rstrip(".")
        key = _host_key(name)
        if not name or name in _LOOPBACK_NAMES:
            return
        if not isinstance(key, str) and (key.is_loopback or key.is_unspecified):
            return  # every port already
        self._add(key, port)
        if not isinstance(key, str):
            return
        try:  # after _add: the lookup of an allowed name is allowed
            infos = socket.getaddrinfo(name, port)
        except OSError:
            return  # unresolvable now; connecting will say so
        for info in infos:
            address = _host_key(str(info[4][0]))
            if not isinstance(address, str):
                self._add(address, port)

    def _add(self, key: _Host, port: int | None) -> None:
        if port is None:
            self.any_port.add(key)
        else:
            self.endpoints.add((key, port))
        self.lookups.add(key)

    # -- the environment ---------------------------------------------------------------------

    def _on_putenv(self, event: str, args: tuple[Any, ...]) -> None:
        variable, value = os.fsdecode(args[0]), os.fsdecode(args[1])
        if variable.lower() in _PROXY_VARS and value:
            endpoint = endpoint_of(value)
            self.refuse(
                event,
                None if endpoint is None else endpoint[0],
                None if endpoint is None else endpoint[1],
                "a proxy, even on loopback, would carry requests out",
                detail=variable,
                variable=variable,
            )

    # -- child processes ---------------------------------------------------------------------

    def _on_popen(self, event: str, args: tuple[Any, ...]) -> None:
        executable, argv, cwd, env = args
        self.check_child(event, executable, argv, env, cwd=cwd, env_writable=True)

    def _on_system(self, event: str, args: tuple[Any, ...]) -> None:
        command = os.fsdecode(args[0])
        self.refuse_child(event, command, "a shell command can run anything")

    def _on_exec(self, event: str, args: tuple[Any, ...]) -> None:
        path, argv, env = args  # os.exec*, os.posix_spawn*: env is read before the hook
        self.check_child(event, path, argv, env, cwd=None, env_writable=False)

    def _on_spawn(self, event: str, args: tuple[Any, ...]) -> None:
        _mode, path, argv, env = args  # os.spawn* on Windows
        self.check_child(event, path, argv, env, cwd=None, env_writable=False)

    def _on_fork(self, event: str, args: tuple[Any, ...]) -> None:
        # os.spawn* on POSIX is fork + exec in Python: the exec would happen (and be refused)
        # in the child, out of the manifest's reach, so the spawn is judged before the fork.
        try:
            frame = sys._getframe(2)
        except ValueError:
            return  # called from native code, not from os.spawn*
        if frame.f_code is not _SPAWNVEF_CODE:
            return  # a plain fork: the child inherits this hook
        local = frame.f_locals
        self.check_child("os.spawn", local["file"], local["args"], local["env"], cwd=None)

    def check_child(
        self,
        event: str,
        executable: Any,
        argv: Any,
        env: Mapping[Any, Any] | None,
        *,
        cwd: Any,
        env_writable: bool = True,
    ) -> None:
        name = os.fsdecode(os.fspath(executable))
        command = _command_line(argv)
        path = _resolve(name, env, cwd)
        if path is not None:
            if path in getattr(self.local, "executables", ()):
                return  # ours: the local tritonserver, inside allow_child_process()
            if (os.path.basename(path), *_argv_tail(argv)) in _PROBES and path.startswith(
                _SYSTEM_DIRS
            ):
                return
            if self.is_python(path):
                if _pass_the_guard_on(env, env_writable):
                    return
                self.refuse_child(
                    event,
                    command,
                    f"its environment lacks {GUARD_ENV}=1, so it would run unguarded",
                )
        self.refuse_child(
            event, command, "a program could reach the network where the guard cannot see it"
        )

    def is_python(self, path: str) -> bool:
        """This interpreter, or a script whose ``#!`` line names it."""
        if self._python is None:
            self._python = frozenset(
                os.path.realpath(p)
                for p in (sys.executable, getattr(sys, "_base_executable", None))
                if p
            )
        if path in self._python:
            return True
        try:
            with open(path, "rb") as f:
                head = f.read(256)
        except OSError:
            return False
        if not head.startswith(b"#!"):
            return False
        interpreter = head[2:].split(b"\n", 1)[0].split()
        return bool(interpreter) and os.path.realpath(os.fsdecode(interpreter[0])) in self._python

    def refuse_child(self, event: str, command: str, why: str) -> None:
        self.refuse(
            event,
            None,
            None,
            f"only the local tritonserver and Python children (which inherit the guard) "
            f"may be started; {why}",
            detail=command,
            command=command,
        )

    # -- refusing ----------------------------------------------------------------------------

    def refuse(
        self,
        event: str,
        host: str | None,
        port: int | None,
        why: str,
        *,
        detail: str | None = None,
        **fields: Any,
    ) -> None:
        attempt = BlockedAttempt(
            event=event, host=host, port=port, origin=_origin(), at=time.time(), detail=detail
        )
        with self.lock:
            self.blocked.append(attempt)
        logger.warning("%s", attempt)
        raise NetworkAccessBlocked(
            f"{attempt}: the model system is offline; {why}",
            host=attempt.host,
            port=attempt.port,
            event=event,
            origin=attempt.origin,
            **fields,
        )


def _host_key(name: str) -> _Host:
    """An address as an IP (IPv4-mapped IPv6 as IPv4, no zone), else the lower-case name."""
    try:
        ip = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return name
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _joined(host: str, port: int | None) -> str:
    return host if port is None else f"{host}:{port}"


def _command_line(argv: Any) -> str:
    if isinstance(argv, str | bytes | os.PathLike):
        text = os.fsdecode(os.fspath(argv))
    else:
        text = shlex.join(os.fsdecode(os.fspath(a)) for a in argv)
    return text if len(text) <= _COMMAND_CHARS else text[: _COMMAND_CHARS - 1] + "…"


def _argv_tail(argv: Any) -> tuple[str, ...]:
    if isinstance(argv, str | bytes | os.PathLike):
        return ()
    return tuple(os.fsdecode(os.fspath(a)) for a in list(argv)[1:])


def _resolve(name: str, env: Mapping[Any, Any] | None, cwd: Any) -> str | None:
    """The real path of the program ``name`` starts (searched on PATH as exec does), or None."""
    if os.path.dirname(name):
        if cwd is not None and not os.path.isabs(name):
            name = os.path.join(os.fsdecode(os.fspath(cwd)), name)
        return os.path.realpath(name)
    for directory in os.get_exec_path(env):
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.realpath(candidate)
    return None


def _pass_the_guard_on(env: Mapping[Any, Any] | None, writable: bool) -> bool:
    """Whether the Python child's environment carries (or now got) ``GUARD_ENV=1``."""
    if env is None:
        if os.environ.get(GUARD_ENV) != "1":
            os.environ[GUARD_ENV] = "1"  # someone removed it since install(); still guarded
        return True
    for key, value in ((GUARD_ENV, "1"), (GUARD_ENV.encode(), b"1")):
        with contextlib.suppress(TypeError):  # os.environ(b) takes one kind of key only
            if env.get(key) == value:
                return True
    if writable and isinstance(env, MutableMapping):
        env[GUARD_ENV] = "1"  # the caller's env mapping gains the marker
        return True
    return False


_SPAWNVEF_CODE = getattr(getattr(os, "_spawnvef", None), "__code__", None)
_guard = _Guard()


def install() -> None:
    """Make the environment offline and install the guard (idempotent; for the whole process).

    Sets :data:`OFFLINE_ENV` and removes the proxy variables (see the module
    docstring); nothing is restored later.
    """
    for name in [name for name in os.environ if name.lower() in _PROXY_VARS]:
        del os.environ[name]
    for name, value in OFFLINE_ENV.items():
        os.environ[name] = value
    with _guard.lock:
        if _guard.installed:
            return
        _guard.installed = True
    sys.addaudithook(_guard.hook)
    logger.debug("network guard installed")


def install_if_inherited() -> bool:
    """Install the guard if this process is the child of a guarded one (``GUARD_ENV=1``).

    Returns:
        Whether it installed the guard now.
    """
    if _guard.installed or os.environ.get(GUARD_ENV) != "1":
        return False
    install()
    logger.debug("network guard inherited from the parent process")
    return True


def installed() -> bool:
    """Whether this process has the guard."""
    return _guard.installed


def allow(endpoints: Iterable[str | tuple[str, int | None]]) -> None:
    """Let the guard through to these hosts (names or addresses) and what they resolve to.

    Args:
        endpoints: ``(host, port)``: that port only (the mapping's Triton
            endpoints, from :func:`endpoint_of`); a host alone, or a port of
            ``None``: every port (the run index database). Names are resolved
            once, now (their lookup is allowed since the name is).
    """
    for endpoint in endpoints:
        host, port = (endpoint, None) if isinstance(endpoint, str) else endpoint
        _guard.allow(host, port)


@contextlib.contextmanager
def allow_child_process(executable: str | os.PathLike[str]) -> Iterator[None]:
    """Within the block, this thread may start ``executable``: our own local server.

    For :class:`~modelmanager.triton.server.TritonServer`, around the start of
    ``tritonserver``; any other program, thread or moment is still refused.

    >>> with allow_child_process(find_tritonserver()):  # doctest: +SKIP
    ...     process = subprocess.Popen([str(find_tritonserver()), ...])
    """
    previous: frozenset[str] = getattr(_guard.local, "executables", frozenset())
    _guard.local.executables = previous | {os.path.realpath(executable)}
    try:
        yield
    finally:
        _guard.local.executables = previous


def host_of(url: str) -> str | None:
    """The host of a URL or a ``host:port`` address, or None."""
    target = url if "://" in url else f"//{url}"
    return urlsplit(target).hostname


def endpoint_of(url: str) -> tuple[str, int | None] | None:
    """``(host, port)`` of a URL or a ``host:port`` address; an http(s) URL's default port.

    >>> endpoint_of("http://triton:8000"), endpoint_of("triton:8001")
    (('triton', 8000), ('triton', 8001))
    """
    parts = urlsplit(url if "://" in url else f"//{url}")
    if parts.hostname is None:
        return None
    try:
        port = parts.port
    except ValueError:
        return None  # not a port number
    return parts.hostname, port if port is not None else _DEFAULT_PORTS.get(parts.scheme)


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
    frame = sys._getframe(1)
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
