"""The timm-pretrained and clip-load rules: ``timm.create_model`` and openai ``clip.load``."""

from __future__ import annotations

import ast

from modelmanager.offline.lint._findings import _Hit
from modelmanager.offline.lint._values import (
    _HUB_PREFIXES,
    _UNKNOWN,
    _arg,
    _is_falsy_literal,
    _Names,
)


def check_timm_pretrained(node: ast.Call, qualname: str | None, names: _Names) -> _Hit | None:
    if qualname != "timm.create_model":
        return None
    name = _arg(node, 0, "model_name")
    if name is not None and (names.evaluate(name).text or "").startswith(_HUB_PREFIXES):
        return (
            "timm-pretrained",
            "an 'hf-hub:' model name downloads its config and weights from the Hub",
        )
    pretrained = _arg(node, 1, "pretrained")
    if pretrained is None or _is_falsy_literal(pretrained) or _local_overlay(node, names):
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


def _local_overlay(node: ast.Call, names: _Names) -> bool:
    """``pretrained_cfg_overlay=dict(file=<local path>)`` (or ``{"file": ...}``)."""
    overlay = _arg(node, -1, "pretrained_cfg_overlay")
    file: ast.expr | None = None
    if isinstance(overlay, ast.Call) and isinstance(overlay.func, ast.Name):
        if overlay.func.id == "dict" and names.lookup("dict") is None:
            file = _arg(overlay, -1, "file")
    elif isinstance(overlay, ast.Dict):
        for key, value in zip(overlay.keys, overlay.values, strict=True):
            if isinstance(key, ast.Constant) and key.value == "file":
                file = value
    return file is not None and names.is_local(names.evaluate(file))


def check_clip_load(node: ast.Call, qualname: str | None, names: _Names) -> _Hit | None:
    if qualname != "clip.load":
        return None
    name = _arg(node, 0, "name")
    value = _UNKNOWN if name is None else names.evaluate(name)
    if names.is_local(value, strict=True):
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
