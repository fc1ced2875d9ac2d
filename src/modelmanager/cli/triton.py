"""``modelmanager triton``: build a Triton model repository from a profile, and serve it.

    modelmanager triton build-repo PROFILE OUT [--models-root DIR] [--force] [--json]
    modelmanager triton serve REPO [--host H] [--http-port P] [--grpc-port Q]
                                   [--metrics-port R] [--startup-timeout S] [--json]

``serve`` runs the CPU ``tritonserver`` of nvidia-pytriton on loopback (see
:mod:`modelmanager.triton.server`), prints its URLs (with ``--json``: one JSON
object on stdout, flushed at once, so a parent process can read it), and keeps
it until SIGINT or SIGTERM, then stops it and exits 0. Should the server die
on its own meanwhile, ``serve`` reports ``triton_unavailable`` (a second JSON
document with ``--json``) and exits 1. Exit codes and error output are those
of the main command (D10).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from modelmanager.cli._common import (
    JsonOption,
    ModelsRootOption,
    command_group,
    current_settings,
    print_json,
    reported,
    stderr,
    stdout,
)

__all__ = ["triton_app"]

triton_app = command_group(
    "Build a Triton model repository from a profile, and serve it on this machine."
)

PortOption = Annotated[int | None, typer.Option(min=1, max=65535, help="Default: a free port.")]
# How often serve checks that the server it keeps is still alive.
_WATCH_INTERVAL_S = 0.5


@triton_app.command("build-repo")
def build_repo(
    profile: Annotated[Path, typer.Argument(help="Profile YAML (or JSON).")],
    out: Annotated[Path, typer.Argument(help="Repository directory to write.")],
    models_root: ModelsRootOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace OUT if it exists and is not empty.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Write the Triton repository of the profile's runtime: triton entries (verified ONNX)."""
    from modelmanager.config import require_models_root
    from modelmanager.mapping.sources import resolve_mapping
    from modelmanager.triton.repo import build_repository
    from modelmanager.weights.digest import DigestCache, Digester

    with reported(as_json):
        mapping, origin = resolve_mapping(profile_path=profile)
        settings = current_settings()
        root = require_models_root(models_root or settings.models_root)
        with DigestCache.in_dir(settings.cache_dir) as cache:
            models = build_repository(
                mapping,
                root,
                out,
                force=force,
                digester=Digester(cache, workers=settings.digest_workers),
            )
    result = {
        "source": str(origin),
        "repository": str(out.absolute()),
        "models": [
            {"name": m.name, "versions": list(m.versions), "path": str(m.path)} for m in models
        ],
    }
    if as_json:
        print_json(result)
        return
    stdout.print(f"wrote {result['repository']} (from {origin})", markup=False)
    for model in models:
        versions = ", ".join(map(str, model.versions))
        stdout.print(f"  {model.name}  versions {versions}  {model.path}", markup=False)


@triton_app.command()
def serve(
    repository: Annotated[Path, typer.Argument(help="Triton model repository (build-repo).")],
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but loopback exposes the server.")
    ] = "127.0.0.1",
    http_port: PortOption = None,
    grpc_port: PortOption = None,
    metrics_port: PortOption = None,
    startup_timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for every model to load.")
    ] = 60,
    as_json: JsonOption = False,
) -> None:
    """Serve REPO with the CPU tritonserver until SIGINT or SIGTERM."""
    from modelmanager.triton.server import TritonServer

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    with reported(as_json):
        server = TritonServer(
            repository,
            host=host,
            http_port=http_port,
            grpc_port=grpc_port,
            metrics_port=metrics_port,
            startup_timeout_s=startup_timeout,
        )
        previous = {
            signum: signal.signal(signum, request_stop)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            server.start()
            info: dict[str, Any] = {
                "repository": str(server.repository),
                "http_url": server.http_url,
                "grpc_url": server.grpc_url,
                "metrics_url": server.metrics_url,
                "pid": server.pid,
                "log_path": str(server.log_path),
            }
            if as_json:
                print_json(info)
            else:
                for key, value in info.items():
                    stdout.print(f"{key:<12} {value}", markup=False)
                stderr.print("serving; stop with Ctrl-C or SIGTERM", markup=False)
            sys.stdout.flush()  # a parent reading the pipe needs the URLs now
            while not stop.wait(_WATCH_INTERVAL_S):
                server.check_running()
        finally:
            server.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    if not as_json:
        stderr.print("stopped", markup=False)
