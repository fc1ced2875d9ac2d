"""Static check for calls that would reach the network (R-NET-3, D7).

The model system never downloads anything: weights are prepared on local disk
beforehand (R-NET-1). ``modelmanager lint-offline PATH...`` parses Python
source with :mod:`ast` (nothing is imported or run) and reports the calls a new
user writes out of habit, each as ``path:line:col: rule: call — why``.

Rules
-----
==================== ==========================================================
hub-model-id         ``X.from_pretrained(id)`` on any receiver (transformers,
                     diffusers, peft: its second argument), the
                     sentence-transformers ``SentenceTransformer(id)`` and
                     ``CrossEncoder(id)`` constructors, ``transformers.pipeline``
                     without a local ``model=``, ``open_clip.create_model*(name,
                     pretrained=...)`` and "hf-hub:" names: the id is not a local
                     path. ``local_files_only=True`` makes any of them pass.
hub-download         huggingface_hub ``hf_hub_download``, ``snapshot_download``,
                     ``cached_download``, ``hf_hub_url``, every function of
                     ``huggingface_hub.file_download`` (but the cache lookup
                     ``try_to_load_from_cache``) and every ``HfApi()`` method;
                     ``local_files_only=True`` passes the download functions.
torch-hub            ``torch.hub.load_state_dict_from_url``,
                     ``download_url_to_file``, ``list``, ``help``,
                     ``torch.hub.load`` unless ``source="local"``,
                     ``torch.utils.model_zoo.load_url``, and torchvision model
                     builders given ``weights=``/``pretrained=`` (they download
                     through torch.hub).
timm-pretrained      ``timm.create_model(name, pretrained=<not False>)`` unless
                     ``pretrained_cfg_overlay=dict(file=<local path>)``; and
                     "hf-hub:" model names.
clip-load            ``clip.load(name)`` (openai CLIP) unless ``name`` is a path:
                     model names such as "ViT-B/32" are downloaded.
http-outside         requests, httpx, urllib.request, urllib3, aiohttp, wget and
                     http.client calls to a literal URL whose host is not
                     loopback (127.0.0.0/8, ::1, localhost).
http-unverifiable    the same calls when the URL is not a literal, so its host
                     cannot be checked.
allow-without-reason an allow comment that gives no reason.
syntax-error         the file does not parse (or decode), or is nested too deep
                     to check (generated code).
==================== ==========================================================

What counts as a local path
---------------------------
A string literal is a local path when it starts with ``/``, ``./``, ``../`` or
``~`` (or is ``.``/``..``, or a Windows drive path), or ends in a weights or
config file suffix (``.pt``, ``.safetensors``, ``.onnx``, ``.json``, ...).
Otherwise a literal shaped like a Hub id, one or two name segments
(``"gpt2"``, ``"bert-base-uncased"``, ``"org/name"``, ``"weights/x"``), is a Hub
id, because that is how the libraries read it when no such directory exists;
anything else (``"models/bert/base"``: three segments) is local. Write
``"./weights/x"`` to make a relative path unmistakable. ``clip.load`` is
stricter: its names ("ViT-L/14@336px") are not Hub-shaped, so only the prefixes
and suffixes above count there. URLs (``https://``, ``hf://``) are never local.

An f-string or ``+`` concatenation is local when its literal head is (starts
with ``/``, ``./``, ``../``, ``~``); so are ``Path(<local>) / x``,
``os.path.join(<local>, ...)``, ``Path(__file__).parent``, ``Path.home()``,
``os.path.abspath(x)`` and names assigned such values earlier in the file.

A URL is loopback when its literal head includes the whole host:
``f"http://127.0.0.1:{port}/v2"`` and ``f"http://localhost/{p}"`` pass, but
``f"http://localhost{p}"`` does not (``{p}`` could continue the host name).
Method calls on a client made in the same file (``requests.Session()``,
``httpx.Client(base_url=...)``, ``aiohttp.ClientSession()``,
``urllib.request.build_opener()``, ``urllib3.PoolManager()``) are checked the
same way, best effort: clients kept in attributes (``self.session``) are not
followed.

Names are resolved through the file's imports, whatever their form
(``import transformers as tf``, ``from huggingface_hub import hf_hub_download
as dl``, ``import torch.hub as th``, ...); a local function or variable that
shadows a name is not mistaken for the library.

Allowing a line
---------------
``# offline: allow <reason>`` on the call's line (or the last line of a call
that spans several), or alone on the line above, allows it. The reason runs to
the end of the comment or the next ``#``; without one the comment allows
nothing and is itself a finding (``allow-without-reason``).

Layout
------
One module per rule family: :mod:`.hub` (hub-model-id, hub-download),
:mod:`.torch_hub`, :mod:`.timm_clip` (timm-pretrained, clip-load) and
:mod:`.http` (http-outside, http-unverifiable). They share :mod:`._values`
(what a name or an expression is known to be), :mod:`._checker` (the walk that
binds names and asks every rule about every call) and :mod:`._findings`
(findings, and the allow comments that drop them).

>>> [f.rule for f in lint_source('import requests\\nrequests.get("https://example.com")')]
['http-outside']
"""

from __future__ import annotations

import ast
import os
import tokenize
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

from modelmanager.offline.lint._checker import _Checker
from modelmanager.offline.lint._findings import Finding, _allow_comments, _apply_allows

__all__ = ["RULES", "Finding", "lint_file", "lint_paths", "lint_source", "python_files"]

RULES: dict[str, str] = {
    "hub-model-id": "a model loaded by a Hub id (or an id that cannot be verified to be a local path)",
    "hub-download": "a huggingface_hub call that downloads or talks to the Hub",
    "torch-hub": "a torch.hub / model_zoo / torchvision weights download",
    "timm-pretrained": "timm.create_model with pretrained weights downloaded from the Hub",
    "clip-load": "clip.load with a model name that it downloads",
    "http-outside": "an HTTP call to a host that is not loopback",
    "http-unverifiable": "an HTTP call whose URL is not a literal, so its host cannot be checked",
    "allow-without-reason": "an '# offline: allow' comment without a reason",
    "syntax-error": "a file that does not parse, or is nested too deep to check",
}


def lint_source(source: str, path: str = "<string>") -> list[Finding]:
    """Check one module's source text.

    Args:
        source: Python source.
        path: the name findings carry.

    Returns:
        The findings, sorted by line and column; a source that does not parse
        gives one ``syntax-error`` finding.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes and the like are not our business
            tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        line, col = exc.lineno or 1, exc.offset or 1
        return [Finding(path, line, col, "syntax-error", "", f"cannot parse: {exc.msg}")]
    except (ValueError, RecursionError) as exc:  # null bytes; nesting past the compiler's limit
        return [Finding(path, 1, 1, "syntax-error", "", f"cannot parse: {exc}")]
    try:
        raw = _Checker(path).run(tree)
    except RecursionError:  # generated code: expressions nested hundreds deep
        why = "too deeply nested to check; check this file by hand"
        return [Finding(path, 1, 1, "syntax-error", "", why)]
    allows = list(_allow_comments(source)) if "offline:" in source else []  # tokenizing is slow
    findings = _apply_allows(raw, allows, path)
    return sorted(findings, key=lambda f: (f.line, f.col, f.rule))


def lint_file(path: Path) -> list[Finding]:
    """Check one file, decoded as Python does (coding cookie, BOM).

    Raises:
        OSError: the file cannot be read.
    """
    try:
        with tokenize.open(path) as handle:
            source = handle.read()
    except (SyntaxError, UnicodeDecodeError) as exc:
        return [Finding(str(path), 1, 1, "syntax-error", "", f"cannot decode: {exc}")]
    return lint_source(source, str(path))


_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "site-packages"})


def python_files(paths: Iterable[Path]) -> list[Path]:
    """The files to check: files as given, directories walked for ``*.py``.

    Hidden directories, ``__pycache__``, ``node_modules`` and virtual
    environments (a directory with ``pyvenv.cfg``) are not walked.
    """
    files: list[Path] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        for root, dirs, names in os.walk(path):
            dirs[:] = sorted(
                d
                for d in dirs
                if not d.startswith(".")
                and d not in _SKIPPED_DIRS
                and not os.path.exists(os.path.join(root, d, "pyvenv.cfg"))
            )
            files.extend(Path(root, n) for n in sorted(names) if n.endswith(".py"))
    return list(dict.fromkeys(files))


def lint_paths(paths: Sequence[Path]) -> list[Finding]:
    """Check files and directories (walked for ``*.py``).

    Returns:
        The findings, sorted by path, line and column.

    Raises:
        OSError: a path does not exist or cannot be read.
    """
    findings = [f for file in python_files(paths) for f in lint_file(file)]
    return sorted(findings, key=lambda f: (f.path, f.line, f.col, f.rule))
