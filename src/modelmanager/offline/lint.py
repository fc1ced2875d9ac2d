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

>>> [f.rule for f in lint_source('import requests\\nrequests.get("https://example.com")')]
['http-outside']
"""

from __future__ import annotations

import ast
import io
import ipaddress
import os
import re
import tokenize
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass(frozen=True)
class Finding:
    """One call that would reach the network.

    ``line`` and ``col`` are 1-based (as ruff and flake8 print them); ``call``
    is the called expression as written (``"M.from_pretrained"``).
    """

    path: str
    line: int
    col: int
    rule: str
    call: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.rule}: {self.call} — {self.why}"


# --------------------------------------------------------------------------- #
# Literals: local paths, Hub ids, URLs


_LOCAL_PREFIXES = ("/", "./", "../", "~", ".\\", "..\\")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_HUB_PREFIXES = ("hf-hub:", "hf_hub:")
_HUB_ID = re.compile(r"[\w.-]+(?:/[\w.-]+)?")
_FILE_SUFFIXES = frozenset(
    (  # noqa: SIM905  (one line of suffixes reads better than 25)
        ".pt .pth .bin .safetensors .onnx .ckpt .h5 .pb .gguf .ggml .msgpack .tflite .engine"
        " .plan .npz .npy .pkl .model .tar .gz .zip .json .yaml .yml .txt"
    ).split()
)


def _has_file_suffix(text: str) -> bool:
    name = text.replace("\\", "/").rsplit("/", 1)[-1]
    return os.path.splitext(name)[1].lower() in _FILE_SUFFIXES


def _has_local_prefix(text: str) -> bool:
    return (
        text in (".", "..") or text.startswith(_LOCAL_PREFIXES) or bool(_WINDOWS_DRIVE.match(text))
    )


def _is_local_literal(text: str, *, strict: bool = False) -> bool:
    """Whether a whole string literal names a local path (see the module docstring)."""
    if _URL_SCHEME.match(text) or text.startswith(_HUB_PREFIXES):
        return False
    if _has_local_prefix(text) or _has_file_suffix(text):
        return True
    return not strict and _HUB_ID.fullmatch(text) is None


def _host_of(text: str, *, exact: bool) -> str | None:
    """The host of a URL's text (all of it, or only its head), or None when unknown.

    Returns "" for URLs that name no host (``file:///...``).
    """
    scheme = _URL_SCHEME.match(text)
    if scheme is None:
        return None
    if scheme.group(1).lower() == "file":
        return ""
    rest = text[scheme.end() :]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=-1)
    authority = rest if end < 0 else rest[:end]
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):
        host, bracket, _ = hostport[1:].partition("]")
        return host if bracket else None
    host, colon, _ = hostport.partition(":")
    if end < 0 and not exact and not colon:
        return None  # the unknown rest could continue the host name
    return host


def _is_loopback(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host in ("", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- #
# What the checker knows about a value


@dataclass(frozen=True)
class _Value:
    """What is known about an expression's value: best effort, in source order."""

    #: an imported thing ("requests.get") or an instance of one ("httpx.Client()")
    qualname: str | None = None
    #: a string's text: all of it (exact) or only its literal head
    text: str | None = None
    exact: bool = False
    #: a path expression rooted at a local path
    local_path: bool = False
    #: the URL an object carries: a client's base_url, a urllib Request's url
    url: _Value | None = None


_UNKNOWN = _Value()

# Modules that re-export their submodules' names: one spelling per thing.
_REEXPORTS = {
    "requests.api": "requests",
    "requests.sessions": "requests",
    "httpx._api": "httpx",
    "httpx._client": "httpx",
    "aiohttp.client": "aiohttp",
    "huggingface_hub.hf_api": "huggingface_hub",
    "huggingface_hub._snapshot_download": "huggingface_hub",
    "timm.models._factory": "timm",
    "timm.models": "timm",
    "clip.clip": "clip",
    "open_clip.factory": "open_clip",
    "open_clip.pretrained": "open_clip",
    "sentence_transformers.SentenceTransformer.SentenceTransformer": "sentence_transformers.SentenceTransformer",
    "sentence_transformers.cross_encoder.CrossEncoder.CrossEncoder": "sentence_transformers.CrossEncoder",
    "sentence_transformers.cross_encoder.CrossEncoder": "sentence_transformers.CrossEncoder",
    "transformers.pipelines.pipeline": "transformers.pipeline",
    "transformers.pipelines": "transformers",
    "urllib3.poolmanager": "urllib3",
}
_REEXPORT_ORDER = sorted(_REEXPORTS, key=len, reverse=True)


def _canonical(qualname: str) -> str:
    for prefix in _REEXPORT_ORDER:
        if qualname == prefix or qualname.startswith(prefix + "."):
            return _REEXPORTS[prefix] + qualname[len(prefix) :]
    return qualname


# Calls whose result is a path, local when their first argument is.
_PATH_OF_FIRST_ARG = frozenset(
    {
        "pathlib.Path",
        "pathlib.PurePath",
        "pathlib.PosixPath",
        "pathlib.PurePosixPath",
        "os.path.join",
        "os.path.expanduser",
        "os.path.dirname",
        "os.path.normpath",
        "os.fspath",
    }
)
# Calls whose result is always a local (absolute) path.
_LOCAL_PATH_CALLS = frozenset(
    {
        "pathlib.Path.home",
        "pathlib.Path.cwd",
        "os.getcwd",
        "os.path.abspath",
        "os.path.realpath",
        "tempfile.gettempdir",
        "tempfile.mkdtemp",
    }
)
_PATH_ATTRS = frozenset({"parent", "parents"})
_PATH_METHODS = frozenset(
    {"resolve", "absolute", "expanduser", "joinpath", "with_name", "with_suffix", "with_stem"}
)

# --------------------------------------------------------------------------- #
# Catalogue of the calls each rule looks for

_VERBS = ("get", "post", "put", "patch", "delete", "head", "options")
_Arg = tuple[int, str]  # (position, keyword) of an argument
_VERB_ARGS: dict[str, _Arg] = dict.fromkeys(_VERBS, (0, "url"))

_HTTP_FUNCS: dict[str, _Arg] = {
    **{f"requests.{verb}": arg for verb, arg in _VERB_ARGS.items()},
    "requests.request": (1, "url"),
    **{f"httpx.{verb}": arg for verb, arg in _VERB_ARGS.items()},
    "httpx.request": (1, "url"),
    "httpx.stream": (1, "url"),
    "urllib.request.urlopen": (0, "url"),
    "urllib.request.urlretrieve": (0, "url"),
    "urllib3.request": (1, "url"),
    "aiohttp.request": (1, "url"),
    "wget.download": (0, "url"),
}
_HTTP_HOST_FUNCS: dict[str, _Arg] = {
    "http.client.HTTPConnection": (0, "host"),
    "http.client.HTTPSConnection": (0, "host"),
}
_CLIENT_METHODS: dict[str, dict[str, _Arg]] = {
    "requests.Session()": {**_VERB_ARGS, "request": (1, "url")},
    "requests.session()": {**_VERB_ARGS, "request": (1, "url")},
    "httpx.Client()": {**_VERB_ARGS, "request": (1, "url"), "stream": (1, "url")},
    "httpx.AsyncClient()": {**_VERB_ARGS, "request": (1, "url"), "stream": (1, "url")},
    "aiohttp.ClientSession()": {**_VERB_ARGS, "request": (1, "url"), "ws_connect": (0, "url")},
    "urllib.request.build_opener()": {"open": (0, "fullurl")},
    "urllib.request.OpenerDirector()": {"open": (0, "fullurl")},
    "urllib3.PoolManager()": {"request": (1, "url"), "urlopen": (1, "url")},
}
# Constructors whose object carries a URL: clients' base_url, urllib's Request.
_URL_CARRIERS: dict[str, _Arg] = {
    "httpx.Client": (-1, "base_url"),
    "httpx.AsyncClient": (-1, "base_url"),
    "aiohttp.ClientSession": (0, "base_url"),
    "urllib.request.Request": (0, "url"),
}

_SENTENCE_TRANSFORMERS = frozenset(
    {"sentence_transformers.SentenceTransformer", "sentence_transformers.CrossEncoder"}
)
_OPEN_CLIP_FACTORIES = frozenset(
    {
        "open_clip.create_model",
        "open_clip.create_model_and_transforms",
        "open_clip.create_model_from_pretrained",
    }
)
_HF_LOCAL_ONLY = frozenset({"try_to_load_from_cache"})
_TORCH_HUB_ALWAYS = frozenset(
    {
        "torch.hub.load_state_dict_from_url",
        "torch.hub.download_url_to_file",
        "torch.hub.list",
        "torch.hub.help",
        "torch.utils.model_zoo.load_url",
    }
)
_TORCHVISION_WEIGHT_ARGS = ("weights", "weights_backbone", "pretrained", "pretrained_backbone")

_Hit = tuple[str, str]  # (rule, why)

# --------------------------------------------------------------------------- #
# Argument helpers


def _arg(call: ast.Call, position: int, *keywords: str) -> ast.expr | None:
    """The argument passed by keyword, or at ``position`` (-1: keyword only)."""
    for kw in call.keywords:
        if kw.arg in keywords:
            return kw.value
    if 0 <= position < len(call.args):
        if any(isinstance(a, ast.Starred) for a in call.args[: position + 1]):
            return None
        return call.args[position]
    return None


def _is_true(call: ast.Call, keyword: str) -> bool:
    return any(
        kw.arg == keyword and isinstance(kw.value, ast.Constant) and kw.value.value is True
        for kw in call.keywords
    )


def _is_falsy_literal(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and not node.value


# --------------------------------------------------------------------------- #
# The visitor


@dataclass
class _Scope:
    kind: str  # "module", "class" or "function"
    names: dict[str, _Value] = field(default_factory=dict)


@dataclass(frozen=True)
class _Raw:
    """A finding before allow comments: the lines where an allow comment applies."""

    finding: Finding
    allow_lines: frozenset[int]
    line_above: int


_FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


class _Checker(ast.NodeVisitor):
    """Walks one module in source order, keeping an alias table per scope.

    Function bodies are checked after the module (as Python runs them: later),
    so they see names bound anywhere at module level.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.raw: list[_Raw] = []
        self._scopes: list[_Scope] = [_Scope("module")]
        self._deferred: deque[tuple[list[_Scope], _FunctionNode]] = deque()
        self._checks: tuple[Callable[[ast.Call, str | None], _Hit | None], ...] = (
            self._hub_model_id,
            self._hub_download,
            self._torch_hub,
            self._timm_pretrained,
            self._clip_load,
            self._http,
        )

    def run(self, tree: ast.Module) -> list[_Raw]:
        self.visit(tree)
        while self._deferred:
            scopes, function = self._deferred.popleft()
            outer, self._scopes = self._scopes, scopes
            for statement in function.body:
                self.visit(statement)
            self._scopes = outer
        return self.raw

    # -- names ---------------------------------------------------------------

    def _bind(self, name: str, value: _Value) -> None:
        self._scopes[-1].names[name] = value

    def _lookup(self, name: str) -> _Value | None:
        """The name's value; None when unbound here (a builtin, or defined out of sight)."""
        for i, scope in enumerate(reversed(self._scopes)):
            if scope.kind == "class" and i > 0:
                continue  # a class body's names are not visible in its methods
            if name in scope.names:
                return scope.names[name]
        return None

    def _assign(self, target: ast.expr, value: _Value) -> None:
        if isinstance(target, ast.Name):
            self._bind(target.id, value)
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._assign(element, _UNKNOWN)
        elif isinstance(target, ast.Starred):
            self._assign(target.value, _UNKNOWN)
        else:
            self.visit(target)  # attribute or subscript: not followed

    def _push(self, kind: str) -> None:
        self._scopes.append(_Scope(kind))

    def _pop(self) -> None:
        self._scopes.pop()

    def _bind_arguments(self, arguments: ast.arguments) -> None:
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        every += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
        for argument in every:
            self._bind(argument.arg, _UNKNOWN)

    # -- statements that bind names ---------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self._bind(alias.asname, _Value(qualname=_canonical(alias.name)))
            else:
                top = alias.name.partition(".")[0]
                self._bind(top, _Value(qualname=top))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                continue
            local = alias.asname or alias.name
            if node.level or not node.module:
                self._bind(local, _UNKNOWN)  # our own package, not a library
            else:
                self._bind(local, _Value(qualname=_canonical(f"{node.module}.{alias.name}")))

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        value = self._eval(node.value)
        for target in node.targets:
            self._assign(target, value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.visit(node.annotation)
        if node.value is not None:
            self.visit(node.value)
            self._assign(node.target, self._eval(node.value))

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            before = self._lookup(node.target.id) or _UNKNOWN
            grown = (
                self._concat([before, self._eval(node.value)])
                if isinstance(node.op, ast.Add)
                else _UNKNOWN
            )
            self._bind(node.target.id, grown)
        else:
            self.visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self._assign(node.target, self._eval(node.value))

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._assign(node.target, _UNKNOWN)
        for statement in (*node.body, *node.orelse):
            self.visit(statement)

    visit_AsyncFor = visit_For

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self._assign(item.optional_vars, self._eval(item.context_expr))
        for statement in node.body:
            self.visit(statement)

    visit_AsyncWith = visit_With

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self._bind(node.name, _UNKNOWN)
        for statement in node.body:
            self.visit(statement)

    def visit_FunctionDef(self, node: _FunctionNode) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        self.visit(node.args)  # defaults run now
        self._bind(node.name, _UNKNOWN)
        scope = _Scope("function")
        chain = [s for s in self._scopes if s.kind != "class"] + [scope]
        outer, self._scopes = self._scopes, chain
        self._bind_arguments(node.args)
        self._scopes = outer
        self._deferred.append((chain, node))

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.visit(node.args)
        self._push("function")
        self._bind_arguments(node.args)
        self.visit(node.body)
        self._pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in (*node.decorator_list, *node.bases, *(k.value for k in node.keywords)):
            self.visit(expr)
        self._push("class")
        for statement in node.body:
            self.visit(statement)
        self._pop()
        self._bind(node.name, _UNKNOWN)

    def _visit_comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
    ) -> None:
        self._push("function")
        for generator in node.generators:
            self.visit(generator.iter)
            self._assign(generator.target, _UNKNOWN)
            for condition in generator.ifs:
                self.visit(condition)
        if isinstance(node, ast.DictComp):
            self.visit(node.key)
            self.visit(node.value)
        else:
            self.visit(node.elt)
        self._pop()

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _visit_comprehension

    # -- values -----------------------------------------------------------------

    def _eval(self, node: ast.expr) -> _Value:
        """What is known about ``node``'s value (no side effects)."""
        if isinstance(node, ast.Constant):
            return _Value(text=node.value, exact=True) if isinstance(node.value, str) else _UNKNOWN
        if isinstance(node, ast.Name):
            bound = self._lookup(node.id)
            if bound is None and node.id == "__file__":
                return _Value(local_path=True)
            return bound or _UNKNOWN
        if isinstance(node, ast.Attribute):
            base = self._eval(node.value)
            if base.qualname is not None:
                return _Value(qualname=f"{base.qualname}.{node.attr}")
            return _Value(local_path=base.local_path and node.attr in _PATH_ATTRS)
        if isinstance(node, ast.Subscript):  # Path(__file__).parents[1]
            return _Value(local_path=self._eval(node.value).local_path)
        if isinstance(node, ast.JoinedStr):
            return self._concat([self._eval_fstring_part(part) for part in node.values])
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Add):
                return self._concat([self._eval(term) for term in _operands(node)])
            left = self._eval(node.left)
            if isinstance(node.op, ast.Div):  # Path / "name"
                return _Value(local_path=self._is_local(left))
            if isinstance(node.op, ast.Mod):  # "http://%s:%d" % (host, port)
                return _head_before(left, "%")
            return _UNKNOWN
        if isinstance(node, ast.Call):
            return self._eval_call(node)
        return _UNKNOWN

    def _eval_fstring_part(self, part: ast.expr) -> _Value:
        if isinstance(part, ast.FormattedValue):
            if part.conversion != -1 or part.format_spec is not None:
                return _UNKNOWN
            return self._eval(part.value)
        return self._eval(part)

    @staticmethod
    def _concat(parts: Sequence[_Value]) -> _Value:
        if parts and parts[0].local_path:
            return _Value(local_path=True)
        text = ""
        for part in parts:
            if part.text is None:
                return _Value(text=text) if text else _UNKNOWN
            text += part.text
            if not part.exact:
                return _Value(text=text) if text else _UNKNOWN
        return _Value(text=text, exact=True)

    def _eval_call(self, node: ast.Call) -> _Value:
        func = node.func
        if isinstance(func, ast.Name) and self._lookup(func.id) is None:
            if func.id == "str" and len(node.args) == 1:
                return self._eval(node.args[0])
            return _UNKNOWN
        callee = self._eval(func)
        if callee.qualname is None:
            if isinstance(func, ast.Attribute):
                receiver = self._eval(func.value)
                if receiver.local_path and func.attr in _PATH_METHODS:
                    return _Value(local_path=True)
                if receiver.text is not None and func.attr == "format":
                    return _head_before(receiver, "{")
            return _UNKNOWN
        qualname = _canonical(callee.qualname)
        if qualname in _LOCAL_PATH_CALLS:
            return _Value(local_path=True)
        if qualname in _PATH_OF_FIRST_ARG:
            first = _arg(node, 0)
            return _Value(local_path=first is None or self._is_local(self._eval(first)))
        carried = None
        if qualname in _URL_CARRIERS:
            url = _arg(node, *_URL_CARRIERS[qualname])
            carried = None if url is None else self._eval(url)
        return _Value(qualname=f"{qualname}()", url=carried)

    def _is_local(self, value: _Value, *, strict: bool = False) -> bool:
        if value.local_path:
            return True
        if value.text is None:
            return False
        if value.exact:
            return _is_local_literal(value.text, strict=strict)
        return _has_local_prefix(value.text) and value.text not in (".", "..")

    # -- calls ------------------------------------------------------------------

    def visit_BinOp(self, node: ast.BinOp) -> None:
        for term in _operands(node):  # a loop, not recursion: generated code chains hundreds
            self.visit(term)

    def visit_Call(self, node: ast.Call) -> None:
        callee = self._eval(node.func).qualname
        qualname = None if callee is None else _canonical(callee)
        for check in self._checks:
            hit = check(node, qualname)
            if hit is not None:
                self._report(node, *hit)
        self.generic_visit(node)

    def _report(self, node: ast.Call, rule: str, why: str) -> None:
        end = node.end_lineno or node.lineno
        func_end = node.func.end_lineno or node.lineno
        finding = Finding(
            self.path, node.lineno, node.col_offset + 1, rule, ast.unparse(node.func), why
        )
        allow = frozenset({*range(node.lineno, func_end + 1), end})
        self.raw.append(_Raw(finding, allow, node.lineno - 1))

    def _model_id(self, node: ast.expr | None) -> _Hit | None:
        rule = "hub-model-id"
        if node is None:
            return (
                rule,
                "the model id is not passed here, so it cannot be checked to be a local path; pass local_files_only=True",
            )
        value = self._eval(node)
        if self._is_local(value):
            return None
        if value.text is not None and value.exact:
            return (
                rule,
                f"{value.text!r} is a Hub id, downloaded at run time; load from a local directory ('./…', '/…') or pass local_files_only=True",
            )
        return (
            rule,
            "the model id is not a literal local path, so it may be a Hub id; pass local_files_only=True",
        )

    def _hub_model_id(self, node: ast.Call, qualname: str | None) -> _Hit | None:
        if _is_true(node, "local_files_only"):
            return None
        if isinstance(node.func, ast.Attribute) and node.func.attr == "from_pretrained":
            if qualname is not None and qualname.startswith("peft."):
                return self._model_id(_arg(node, 1, "model_id"))  # (base_model, model_id)
            return self._model_id(_arg(node, 0, "pretrained_model_name_or_path"))
        if qualname in _SENTENCE_TRANSFORMERS:
            model = _arg(node, 0, "model_name_or_path", "model_name")
            return None if model is None else self._model_id(model)  # no id: an empty model
        if qualname == "transformers.pipeline":
            model = _arg(node, 1, "model")
            if model is None:
                return (
                    "hub-model-id",
                    "pipeline() without model= downloads the task's default model from the Hub; pass model='./local/dir'",
                )
            return self._model_id(model)
        if qualname in _OPEN_CLIP_FACTORIES:
            name = _arg(node, 0, "model_name")
            if name is not None and (self._eval(name).text or "").startswith(_HUB_PREFIXES):
                return "hub-model-id", "an 'hf-hub:' model name downloads from the Hub"
            pretrained = _arg(node, 1, "pretrained")
            if pretrained is None or _is_falsy_literal(pretrained):
                return None
            return self._model_id(pretrained)
        return None

    def _hub_download(self, node: ast.Call, qualname: str | None) -> _Hit | None:
        if qualname is None or not qualname.startswith("huggingface_hub."):
            return None
        name = qualname.rpartition(".")[2]
        if name in _HF_LOCAL_ONLY:
            return None
        if name == "hf_hub_url":
            return (
                "hub-download",
                "hf_hub_url builds a URL to download from the Hugging Face Hub; prepare the files on local disk",
            )
        module = qualname.rpartition(".")[0]
        downloads = "download" in name or module == "huggingface_hub.file_download"
        if downloads and _is_true(node, "local_files_only"):
            return None
        if downloads:
            return (
                "hub-download",
                f"{name} downloads from the Hugging Face Hub; prepare the files on local disk or pass local_files_only=True",
            )
        if "HfApi()." in qualname:
            return (
                "hub-download",
                f"HfApi().{name} talks to the Hugging Face Hub; the model system never does",
            )
        return None

    def _torch_hub(self, node: ast.Call, qualname: str | None) -> _Hit | None:
        if qualname is None:
            return None
        name = qualname.rpartition(".")[2]
        if qualname in _TORCH_HUB_ALWAYS:
            return (
                "torch-hub",
                f"torch.hub {name} downloads; load a local file with torch.load or safetensors",
            )
        if qualname == "torch.hub.load":
            source = _arg(node, -1, "source")
            if isinstance(source, ast.Constant) and source.value == "local":
                return None
            return (
                "torch-hub",
                "torch.hub.load fetches the repository from GitHub unless source='local'",
            )
        if qualname.startswith("torchvision.models."):
            if name == "get_state_dict":
                return (
                    "torch-hub",
                    "torchvision weights' get_state_dict downloads through torch.hub",
                )
            for keyword in _TORCHVISION_WEIGHT_ARGS:
                value = _arg(node, -1, keyword)
                if value is not None and not _is_falsy_literal(value):
                    return (
                        "torch-hub",
                        f"torchvision {keyword}= downloads the weights through torch.hub; build with {keyword}=None and load a local state dict",
                    )
        return None

    def _timm_pretrained(self, node: ast.Call, qualname: str | None) -> _Hit | None:
        if qualname != "timm.create_model":
            return None
        name = _arg(node, 0, "model_name")
        if name is not None and (self._eval(name).text or "").startswith(_HUB_PREFIXES):
            return (
                "timm-pretrained",
                "an 'hf-hub:' model name downloads its config and weights from the Hub",
            )
        pretrained = _arg(node, 1, "pretrained")
        if pretrained is None or _is_falsy_literal(pretrained) or self._local_overlay(node):
            return None
        if isinstance(pretrained, ast.Constant):
            return (
                "timm-pretrained",
                "pretrained=True downloads the weights; pass pretrained=False and load local weights (checkpoint_path= or pretrained_cfg_overlay=dict(file=...))",
            )
        return (
            "timm-pretrained",
            "pretrained is not a literal False, so the weights may be downloaded; pass pretrained=False and load local weights",
        )

    def _local_overlay(self, node: ast.Call) -> bool:
        """``pretrained_cfg_overlay=dict(file=<local path>)`` (or ``{"file": ...}``)."""
        overlay = _arg(node, -1, "pretrained_cfg_overlay")
        file: ast.expr | None = None
        if isinstance(overlay, ast.Call) and isinstance(overlay.func, ast.Name):
            if overlay.func.id == "dict" and self._lookup("dict") is None:
                file = _arg(overlay, -1, "file")
        elif isinstance(overlay, ast.Dict):
            for key, value in zip(overlay.keys, overlay.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "file":
                    file = value
        return file is not None and self._is_local(self._eval(file))

    def _clip_load(self, node: ast.Call, qualname: str | None) -> _Hit | None:
        if qualname != "clip.load":
            return None
        name = _arg(node, 0, "name")
        value = _UNKNOWN if name is None else self._eval(name)
        if self._is_local(value, strict=True):
            return None
        if value.text is not None and value.exact:
            return (
                "clip-load",
                f"{value.text!r} is a CLIP model name that clip.load downloads; pass the path of a local .pt file",
            )
        return (
            "clip-load",
            "the name is not a literal local path, so clip.load may download it; pass the path of a local .pt file",
        )

    def _http(self, node: ast.Call, qualname: str | None) -> _Hit | None:
        if qualname is None:
            return None
        if qualname in _HTTP_HOST_FUNCS:
            host = _arg(node, *_HTTP_HOST_FUNCS[qualname])
            value = _UNKNOWN if host is None else self._eval(host)
            if value.text is None or not value.exact:
                return (
                    "http-unverifiable",
                    "the host is not a literal, so it cannot be checked to be loopback",
                )
            text = value.text
            if not _is_loopback(text) and text.count(":") == 1:
                text = text.partition(":")[0]  # "host:port"
            return _host_verdict(text)
        base: _Value | None = None
        if qualname in _HTTP_FUNCS:
            position, keyword = _HTTP_FUNCS[qualname]
        else:
            receiver, _, method = qualname.rpartition(".")
            methods = _CLIENT_METHODS.get(receiver)
            if methods is None or method not in methods:
                return None
            position, keyword = methods[method]
            if isinstance(node.func, ast.Attribute):
                base = self._eval(node.func.value).url
        url = _arg(node, position, keyword)
        value = _UNKNOWN if url is None else self._eval(url)
        if value.qualname == "urllib.request.Request()":
            value = value.url or _UNKNOWN
        if base is not None and value.text is not None and not _URL_SCHEME.match(value.text):
            value = base  # a path relative to the client's base_url
        return _url_verdict(value)


def _operands(node: ast.BinOp) -> list[ast.expr]:
    """The terms of a left-nested chain of one operator: ``a + b + c`` -> [a, b, c]."""
    terms: list[ast.expr] = []
    left: ast.expr = node
    while isinstance(left, ast.BinOp) and type(left.op) is type(node.op):
        terms.append(left.right)
        left = left.left
    terms.append(left)
    return terms[::-1]


def _head_before(value: _Value, marker: str) -> _Value:
    """A format string's literal head, up to its first placeholder."""
    if value.text is None:
        return _UNKNOWN
    head, found, _ = value.text.partition(marker)
    return _Value(text=head, exact=value.exact and not found)


def _url_verdict(value: _Value) -> _Hit | None:
    if value.text is None:
        return (
            "http-unverifiable",
            "the URL is not a literal, so its host cannot be checked to be loopback (127.0.0.1, ::1, localhost)",
        )
    host = _host_of(value.text, exact=value.exact)
    if host is None:
        return (
            "http-unverifiable",
            "the URL's host is not written out literally, so it cannot be checked to be loopback (127.0.0.1, ::1, localhost)",
        )
    return _host_verdict(host)


def _host_verdict(host: str) -> _Hit | None:
    if _is_loopback(host):
        return None
    return (
        "http-outside",
        f"{host!r} is not a loopback host; the model system never reaches outside hosts (R-NET-1)",
    )


# --------------------------------------------------------------------------- #
# Allow comments

_ALLOW = re.compile(r"offline:\s*allow(?![\w-])(?P<reason>[^#]*)")


@dataclass(frozen=True)
class _Allow:
    line: int
    col: int
    text: str
    reason: str
    own_line: bool  # the comment is alone on its line


def _allow_comments(source: str) -> Iterator[_Allow]:
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return
    for token in tokens:
        if token.type != tokenize.COMMENT:
            continue
        match = _ALLOW.search(token.string)
        if match is None:
            continue
        line, col = token.start
        yield _Allow(
            line=line,
            col=col + 1,
            text=token.string[: match.end()].rstrip(),
            reason=match.group("reason").strip(" \t:-—"),
            own_line=not token.line[:col].strip(),
        )


def _apply_allows(raw: Sequence[_Raw], allows: Sequence[_Allow], path: str) -> list[Finding]:
    same_line = {a.line for a in allows if a.reason}
    line_above = {a.line for a in allows if a.reason and a.own_line}
    findings = [
        r.finding for r in raw if not (r.allow_lines & same_line or r.line_above in line_above)
    ]
    findings += [
        Finding(
            path,
            a.line,
            a.col,
            "allow-without-reason",
            a.text,
            "an allow comment needs a reason ('# offline: allow <why this call stays local>'); it allows nothing",
        )
        for a in allows
        if not a.reason
    ]
    return findings


# --------------------------------------------------------------------------- #
# Entry points


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
