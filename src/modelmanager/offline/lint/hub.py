"""The hub-model-id and hub-download rules: Hugging Face Hub ids and huggingface_hub calls.

hub-model-id covers every ``X.from_pretrained(id)`` (peft: its second
argument), the sentence-transformers ``SentenceTransformer``/``CrossEncoder``
constructors, ``transformers.pipeline`` and the open_clip factories.
"""

from __future__ import annotations

import ast

from modelmanager.offline.lint._findings import _Hit
from modelmanager.offline.lint._values import (
    _HUB_PREFIXES,
    _arg,
    _is_falsy_literal,
    _is_true,
    _Names,
)

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


def check_hub_model_id(node: ast.Call, qualname: str | None, names: _Names) -> _Hit | None:
    if _is_true(node, "local_files_only"):
        return None
    if isinstance(node.func, ast.Attribute) and node.func.attr == "from_pretrained":
        if qualname is not None and qualname.startswith("peft."):
            return _model_id(_arg(node, 1, "model_id"), names)  # (base_model, model_id)
        return _model_id(_arg(node, 0, "pretrained_model_name_or_path"), names)
    if qualname in _SENTENCE_TRANSFORMERS:
        model = _arg(node, 0, "model_name_or_path", "model_name")
        return None if model is None else _model_id(model, names)  # no id: an empty model
    if qualname == "transformers.pipeline":
        model = _arg(node, 1, "model")
        if model is None:
            return (
                "hub-model-id",
                "pipeline() without model= downloads the task's default model from the Hub; pass model='./local/dir'",
            )
        return _model_id(model, names)
    if qualname in _OPEN_CLIP_FACTORIES:
        name = _arg(node, 0, "model_name")
        if name is not None and (names.evaluate(name).text or "").startswith(_HUB_PREFIXES):
            return "hub-model-id", "an 'hf-hub:' model name downloads from the Hub"
        pretrained = _arg(node, 1, "pretrained")
        if pretrained is None or _is_falsy_literal(pretrained):
            return None
        return _model_id(pretrained, names)
    return None


def _model_id(node: ast.expr | None, names: _Names) -> _Hit | None:
    rule = "hub-model-id"
    if node is None:
        return (
            rule,
            "the model id is not passed here, so it cannot be checked to be a local path; pass local_files_only=True",
        )
    value = names.evaluate(node)
    if names.is_local(value):
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


def check_hub_download(node: ast.Call, qualname: str | None, names: _Names) -> _Hit | None:
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
