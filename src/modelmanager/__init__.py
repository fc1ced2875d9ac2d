"""modelmanager: the model system of the video-analytics pipeline.

The public API, in the order of a run: resolve a mapping from its source,
make a :class:`ModelManager` for a run context, ask it for specs, signatures,
keys and runtimes, and let a :class:`Runner` run components against a
:class:`RunStore`. Names load on first use, so ``import modelmanager`` costs
almost nothing and pulls in no runtime, database or model library.

>>> from modelmanager import ModelManager, RunContext, resolve_mapping
>>> mapping, source = resolve_mapping(profile_path="examples/profile.yaml")
>>> run_context = RunContext(run_id="r1", platform_id="yt", video_id="v1",
...                          config_hash="sha256:" + "0" * 64, sampling_policy_version="1",
...                          dataprocessor_version="1.0.0")
>>> with ModelManager(run_context, mapping, models_root="examples/models") as mm:
...     mm.resolve("text_ocr", "recognizer").model_name
...     mm.model_signature_for("text_ocr").startswith("sha256:")
'text-recognizer'
True
"""

import os

import lazy_loader

__version__ = "0.1.0"

# The child of a guarded process stays offline whatever it imports of the package first
# (R-NET-2; the one setting read at import, see modelmanager.offline.guard).
if os.environ.get("MODELMANAGER_OFFLINE_GUARD") == "1":
    from modelmanager.offline import guard as _guard

    _guard.install_if_inherited()

# The public names and where they live are listed once, in __init__.pyi (read by type
# checkers too); each loads on first access, so importing the package costs almost nothing.
__getattr__, _dir, _names = lazy_loader.attach_stub(__name__, __file__)
__all__ = [*_names, "__version__"]


def __dir__() -> list[str]:
    return list(__all__)
