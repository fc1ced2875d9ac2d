"""On-screen text: PP-OCR detection, angle classification and recognition per frame.

Three roles, three ONNX models (``rapidocr-onnxruntime==1.4.4`` ships them):

* ``detector``   — PP-OCRv4 det (DB): ``x`` float32 [B, 3, H, W] (H, W multiples
  of 32) → a text probability map [B, 1, H, W];
* ``classifier`` — PP-OCR mobile v2 cls: ``x`` float32 [B, 3, 48, 192] →
  [B, 2] probabilities of the text being upright (0°) or upside down (180°);
* ``recognizer`` — PP-OCRv4 rec (CTC): ``x`` float32 [B, 3, 48, W] →
  [B, T, C] per-step probabilities over ``blank + character set + space``. The
  character set is the recognizer's own: the ``character`` entry of the model
  file's metadata (one character per line), read through the handle, so a
  recognizer with another alphabet brings its own.

Pipeline per frame (``PREPROCESS_ID`` names it; change it and
``producer_version`` when any step or constant below changes):

1. detection input: the frame resized bilinearly (numpy, pixel-centre aligned)
   to the nearest multiple of 32 per side, longest side at most ``DET_MAX_SIDE``,
   RGB → BGR, ``(x / 255 - mean) / std`` with the ImageNet mean and std;
2. DB post-processing, axis-aligned: threshold the map at ``DET_THRESHOLD``,
   label its 8-connected regions (``scipy.ndimage``), keep a region whose mean
   probability is at least ``BOX_THRESHOLD`` and whose box is at least
   ``MIN_BOX_SIDE`` pixels each way, grow its bounding box by the DB *unclip*
   distance ``area * UNCLIP_RATIO / perimeter`` and map it back to the frame.
   Rotated text gets its axis-aligned bounding box (no perspective crop);
3. angle: each crop at height 48 (width ≤ 192, zero padded) through the
   classifier; a crop judged 180° with probability ≥ ``ANGLE_THRESHOLD`` is turned;
4. recognition: crops at height 48, width ``ceil(48 * w / h)``, zero padded to the
   batch's widest (at least 320), ``(x / 255 - 0.5) / 0.5`` in BGR; greedy CTC
   decoding (best class per step, repeats merged, blanks dropped); the text's
   score is the mean probability of its characters. Texts scoring below
   ``DROP_SCORE`` are dropped.

Output arrays (K = texts found over all frames, in frame order, then top to
bottom, left to right):

* ``frame_index`` int32 [K];
* ``box``         int32 [K, 4]: x0, y0, x1, y1 in frame pixels (x1, y1 exclusive);
* ``box_score``   float32 [K]: the detector's mean probability in the region;
* ``angle``       int16 [K]: 0 or 180, as the classifier turned the crop;
* ``text``        unicode [K];
* ``text_score``  float32 [K].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from modelmanager.components.imaging import resize_bilinear, rgb_frames
from modelmanager.errors import InvalidModelSpec
from modelmanager.run.contract import ComponentOutput, ComponentRequest, Runtime

__all__ = ["Box", "TextOCR", "ctc_decode", "detect_boxes"]

PREPROCESS_ID = "ppocr-db-axis-cls-ctc@1"
DET_MAX_SIDE = 960
DET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
DET_STD = np.array([0.229, 0.224, 0.225], np.float32)
DET_THRESHOLD = 0.3
BOX_THRESHOLD = 0.6
UNCLIP_RATIO = 1.5
MIN_BOX_SIDE = 3
CLS_SIZE = (48, 192)
ANGLE_THRESHOLD = 0.9
REC_HEIGHT = 48
REC_MIN_WIDTH = 320
DROP_SCORE = 0.5
BATCH_SIZE = 8
INPUT_NAME = "x"


@dataclass(frozen=True, slots=True)
class Box:
    """A detected text region: frame pixels, x1/y1 exclusive, and the detector's score."""

    x0: int
    y0: int
    x1: int
    y1: int
    score: float


def _det_size(height: int, width: int) -> tuple[int, int]:
    scale = min(1.0, DET_MAX_SIDE / max(height, width))
    return (
        max(32, round(height * scale / 32) * 32),
        max(32, round(width * scale / 32) * 32),
    )


def _det_input(frames: NDArray[np.uint8], size: tuple[int, int]) -> NDArray[np.float32]:
    out = np.empty((len(frames), 3, *size), np.float32)
    for i, frame in enumerate(frames):
        bgr = resize_bilinear(frame, *size)[:, :, ::-1] / np.float32(255.0)
        out[i] = ((bgr - DET_MEAN) / DET_STD).transpose(2, 0, 1)
    return out


def detect_boxes(prob: NDArray[np.float32], frame_shape: tuple[int, int]) -> list[Box]:
    """DB post-processing of one probability map [h, w] into boxes on a frame of ``frame_shape``."""
    from scipy import ndimage  # the `components` extra; imported where it is needed

    labels, _ = ndimage.label(prob > DET_THRESHOLD, structure=np.ones((3, 3), bool))
    height, width = frame_shape
    sy, sx = height / prob.shape[0], width / prob.shape[1]
    boxes = []
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        if region is None:
            continue
        ys, xs = region
        h, w = ys.stop - ys.start, xs.stop - xs.start
        if min(h, w) < MIN_BOX_SIDE:
            continue
        score = float(prob[region][labels[region] == index].mean())
        if score < BOX_THRESHOLD:
            continue
        grow = h * w * UNCLIP_RATIO / (2 * (h + w))
        boxes.append(
            Box(
                x0=max(0, math.floor((xs.start - grow) * sx)),
                y0=max(0, math.floor((ys.start - grow) * sy)),
                x1=min(width, math.ceil((xs.stop + grow) * sx)),
                y1=min(height, math.ceil((ys.stop + grow) * sy)),
                score=score,
            )
        )
    return sorted(boxes, key=lambda b: (b.y0, b.x0))


def _strip(crop: NDArray[np.uint8], height: int, width: int, max_width: int) -> NDArray[np.float32]:
    """A crop at ``height`` × ``width`` (≤ max_width), BGR, (x/255 - 0.5)/0.5, CHW, zero padded."""
    width = min(width, max_width)
    out = np.zeros((3, height, max_width), np.float32)
    bgr = resize_bilinear(crop, height, width)[:, :, ::-1] / np.float32(127.5) - np.float32(1.0)
    out[:, :, :width] = bgr.transpose(2, 0, 1)
    return out


def _width_for(crop: NDArray[np.uint8], height: int) -> int:
    return max(1, math.ceil(height * crop.shape[1] / crop.shape[0]))


def ctc_decode(probs: NDArray[np.float32], characters: Sequence[str]) -> tuple[str, float]:
    """Greedy CTC decoding of [T, C] probabilities; class 0 is the blank.

    ``characters[i]`` is the text of class ``i + 1``. Returns the text and the
    mean probability of its characters (0.0 for no text).
    """
    best = probs.argmax(axis=1)
    keep = best != 0
    keep[1:] &= best[1:] != best[:-1]
    if not keep.any():
        return "", 0.0
    text = "".join(characters[c - 1] for c in best[keep].tolist())
    return text, float(probs.max(axis=1)[keep].mean())


class TextOCR:
    """The text on every frame of ``inputs["frames"]`` (uint8 RGB [N, H, W, 3])."""

    name = "text_ocr"
    producer_version = "1.0.0"
    schema_version = "1"
    roles: Sequence[str] = ("detector", "classifier", "recognizer")
    max_batch = BATCH_SIZE
    """The largest batch it runs its models with (the planner may choose less)."""

    def process(self, request: ComponentRequest) -> ComponentOutput:
        frames = rgb_frames(request.inputs["frames"], self.name)
        recognizer = request.runtimes["recognizer"]
        characters = _character_set(recognizer)
        per = request.batch_size or BATCH_SIZE  # the plan's, or smaller after an OOM
        boxes = self._detect(request.runtimes["detector"], frames, per)
        crops = [frames[i, b.y0 : b.y1, b.x0 : b.x1] for i, b in boxes]
        angles = self._orient(request.runtimes["classifier"], crops, per)
        crops = [c[::-1, ::-1] if a == 180 else c for c, a in zip(crops, angles, strict=True)]
        texts = self._recognize(recognizer, crops, characters, per)
        kept = [k for k, (_, score) in enumerate(texts) if score >= DROP_SCORE]
        return ComponentOutput(
            {
                "frame_index": np.array([boxes[k][0] for k in kept], np.int32),
                "box": np.array(
                    [(b.x0, b.y0, b.x1, b.y1) for b in (boxes[k][1] for k in kept)], np.int32
                ).reshape(-1, 4),
                "box_score": np.array([boxes[k][1].score for k in kept], np.float32),
                "angle": np.array([angles[k] for k in kept], np.int16),
                "text": np.array([texts[k][0] for k in kept], dtype=np.str_).reshape(-1),
                "text_score": np.array([texts[k][1] for k in kept], np.float32),
            },
            batch_size=per,
            seed=0,
        )

    @staticmethod
    def _detect(detector: Runtime, frames: NDArray[np.uint8], per: int) -> list[tuple[int, Box]]:
        shape = (int(frames.shape[1]), int(frames.shape[2]))
        size = _det_size(*shape)
        found: list[tuple[int, Box]] = []
        for start in range(0, len(frames), per):
            batch = frames[start : start + per]
            (maps,) = detector({INPUT_NAME: _det_input(batch, size)}).values()
            for offset, prob in enumerate(np.asarray(maps, np.float32)[:, 0]):
                for box in detect_boxes(prob, shape):
                    found.append((start + offset, box))
        return found

    @staticmethod
    def _orient(classifier: Runtime, crops: list[NDArray[np.uint8]], per: int) -> list[int]:
        height, width = CLS_SIZE
        angles: list[int] = []
        for start in range(0, len(crops), per):
            batch = crops[start : start + per]
            strips = np.stack([_strip(c, height, _width_for(c, height), width) for c in batch])
            (probs,) = classifier({INPUT_NAME: strips}).values()
            for p in np.asarray(probs, np.float32).reshape(-1, 2):
                angles.append(180 if p[1] > p[0] and p[1] >= ANGLE_THRESHOLD else 0)
        return angles

    @staticmethod
    def _recognize(
        recognizer: Runtime,
        crops: list[NDArray[np.uint8]],
        characters: Sequence[str],
        per: int,
    ) -> list[tuple[str, float]]:
        # Similar widths share a batch (less padding), as PaddleOCR does; results go back in order.
        order = sorted(range(len(crops)), key=lambda k: crops[k].shape[1] / crops[k].shape[0])
        texts: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        for start in range(0, len(order), per):
            chunk = order[start : start + per]
            widths = [_width_for(crops[k], REC_HEIGHT) for k in chunk]
            max_width = max(REC_MIN_WIDTH, *widths)
            strips = np.stack(
                [
                    _strip(crops[k], REC_HEIGHT, w, max_width)
                    for k, w in zip(chunk, widths, strict=True)
                ]
            )
            (probs,) = recognizer({INPUT_NAME: strips}).values()
            for k, steps in zip(chunk, np.asarray(probs, np.float32), strict=True):
                texts[k] = ctc_decode(steps, characters)
        return texts


def _character_set(recognizer: Runtime) -> list[str]:
    """``characters[i]`` = the text of recognizer class ``i + 1`` (the last class is a space)."""
    metadata = recognizer.metadata()
    spec = recognizer.spec
    listed = metadata.model_metadata.get("character")
    if not listed:
        raise InvalidModelSpec(
            f"{spec.component_name}/{spec.role}: the recognizer model {spec.model_name} "
            "carries no 'character' metadata (its character set, one per line)",
            component=spec.component_name,
            role=spec.role,
            field="model_metadata.character",
        )
    characters = [*listed.splitlines(), " "]
    classes = metadata.outputs[0].shape[-1] if metadata.outputs else -1
    if classes not in (-1, len(characters) + 1):
        raise InvalidModelSpec(
            f"{spec.component_name}/{spec.role}: the recognizer has {classes} classes but its "
            f"character set gives {len(characters) + 1} (blank + {len(characters)})",
            component=spec.component_name,
            role=spec.role,
            field="model_metadata.character",
        )
    return characters
