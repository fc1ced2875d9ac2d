"""The torch-hub rule: torch.hub and model_zoo downloads, torchvision pretrained weights."""

from __future__ import annotations

import ast

from modelmanager.offline.lint._findings import _Hit
from modelmanager.offline.lint._values import _arg, _is_falsy_literal, _Names

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


def check_torch_hub(node: ast.Call, qualname: str | None, names: _Names) -> _Hit | None:
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
