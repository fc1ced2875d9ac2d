"""The http-outside and http-unverifiable rules: HTTP calls to hosts that are not loopback.

requests, httpx, urllib.request, urllib3, aiohttp, wget and http.client, called
directly or through a client made in the same file (whose ``base_url`` is
tracked as the client's value, see :data:`._values._URL_CARRIERS`).
"""

from __future__ import annotations

import ast
import ipaddress

from modelmanager.offline.lint._findings import _Hit
from modelmanager.offline.lint._values import _UNKNOWN, _URL_SCHEME, _Arg, _arg, _Names, _Value

_VERBS = ("get", "post", "put", "patch", "delete", "head", "options")
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


def check_http(node: ast.Call, qualname: str | None, names: _Names) -> _Hit | None:
    if qualname is None:
        return None
    if qualname in _HTTP_HOST_FUNCS:
        host = _arg(node, *_HTTP_HOST_FUNCS[qualname])
        value = _UNKNOWN if host is None else names.evaluate(host)
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
            base = names.evaluate(node.func.value).url
    url = _arg(node, position, keyword)
    value = _UNKNOWN if url is None else names.evaluate(url)
    if value.qualname == "urllib.request.Request()":
        value = value.url or _UNKNOWN
    if base is not None and value.text is not None and not _URL_SCHEME.match(value.text):
        value = base  # a path relative to the client's base_url
    return _url_verdict(value)


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
