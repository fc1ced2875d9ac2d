"""What the checker knows about names and values: imports, aliases, literals, local paths.

Best effort and in source order: a name's value is what was last bound to it
in a visible scope; anything not understood is :data:`_UNKNOWN`.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

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
    """Whether a whole string literal names a local path (see the package docstring)."""
    if _URL_SCHEME.match(text) or text.startswith(_HUB_PREFIXES):
        return False
    if _has_local_prefix(text) or _has_file_suffix(text):
        return True
    return not strict and _HUB_ID.fullmatch(text) is None


# --------------------------------------------------------------------------- #
# Values and the names they come from


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

_Arg = tuple[int, str]  # (position, keyword) of an argument

# Constructors whose object carries a URL (clients' base_url, urllib's Request),
# which the http rules read back from the object's value.
_URL_CARRIERS: dict[str, _Arg] = {
    "httpx.Client": (-1, "base_url"),
    "httpx.AsyncClient": (-1, "base_url"),
    "aiohttp.ClientSession": (0, "base_url"),
    "urllib.request.Request": (0, "url"),
}

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


# --------------------------------------------------------------------------- #
# Scopes


@dataclass
class _Scope:
    kind: str  # "module", "class" or "function"
    names: dict[str, _Value] = field(default_factory=dict)


class _Names:
    """The scopes visible where the walk stands, innermost last, and what they tell.

    The checker binds names as it walks; the rules ask what an argument's value
    is (:meth:`evaluate`) and whether it is a local path (:meth:`is_local`).
    """

    def __init__(self) -> None:
        self.scopes: list[_Scope] = [_Scope("module")]

    def bind(self, name: str, value: _Value) -> None:
        self.scopes[-1].names[name] = value

    def lookup(self, name: str) -> _Value | None:
        """The name's value; None when unbound here (a builtin, or defined out of sight)."""
        for i, scope in enumerate(reversed(self.scopes)):
            if scope.kind == "class" and i > 0:
                continue  # a class body's names are not visible in its methods
            if name in scope.names:
                return scope.names[name]
        return None

    def evaluate(self, node: ast.expr) -> _Value:
        """What is known about ``node``'s value (no side effects)."""
        if isinstance(node, ast.Constant):
            return _Value(text=node.value, exact=True) if isinstance(node.value, str) else _UNKNOWN
        if isinstance(node, ast.Name):
            bound = self.lookup(node.id)
            if bound is None and node.id == "__file__":
                return _Value(local_path=True)
            return bound or _UNKNOWN
        if isinstance(node, ast.Attribute):
            base = self.evaluate(node.value)
            if base.qualname is not None:
                return _Value(qualname=f"{base.qualname}.{node.attr}")
            return _Value(local_path=base.local_path and node.attr in _PATH_ATTRS)
        if isinstance(node, ast.Subscript):  # Path(__file__).parents[1]
            return _Value(local_path=self.evaluate(node.value).local_path)
        if isinstance(node, ast.JoinedStr):
            return _concat([self._evaluate_fstring_part(part) for part in node.values])
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Add):
                return _concat([self.evaluate(term) for term in _operands(node)])
            left = self.evaluate(node.left)
            if isinstance(node.op, ast.Div):  # Path / "name"
                return _Value(local_path=self.is_local(left))
            if isinstance(node.op, ast.Mod):  # "http://%s:%d" % (host, port)
                return _head_before(left, "%")
            return _UNKNOWN
        if isinstance(node, ast.Call):
            return self._evaluate_call(node)
        return _UNKNOWN

    def _evaluate_fstring_part(self, part: ast.expr) -> _Value:
        if isinstance(part, ast.FormattedValue):
            if part.conversion != -1 or part.format_spec is not None:
                return _UNKNOWN
            return self.evaluate(part.value)
        return self.evaluate(part)

    def _evaluate_call(self, node: ast.Call) -> _Value:
        func = node.func
        if isinstance(func, ast.Name) and self.lookup(func.id) is None:
            if func.id == "str" and len(node.args) == 1:
                return self.evaluate(node.args[0])
            return _UNKNOWN
        callee = self.evaluate(func)
        if callee.qualname is None:
            if isinstance(func, ast.Attribute):
                receiver = self.evaluate(func.value)
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
            return _Value(local_path=first is None or self.is_local(self.evaluate(first)))
        carried = None
        if qualname in _URL_CARRIERS:
            url = _arg(node, *_URL_CARRIERS[qualname])
            carried = None if url is None else self.evaluate(url)
        return _Value(qualname=f"{qualname}()", url=carried)

    def is_local(self, value: _Value, *, strict: bool = False) -> bool:
        """Whether ``value`` is a local path (``strict``: Hub-shaped names are not)."""
        if value.local_path:
            return True
        if value.text is None:
            return False
        if value.exact:
            return _is_local_literal(value.text, strict=strict)
        return _has_local_prefix(value.text) and value.text not in (".", "..")
