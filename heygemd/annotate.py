"""Pictures of findings: the deciding frame with the face box, landmarks, the measured angle or
score and the reason written on it, so a person sees at a glance what to change.

Drawing is pure (RGB array in, RGB array out, same size); :func:`save_jpeg` is the one function
that writes a file. Text on the image is ASCII (OpenCV's Hershey fonts have no other glyphs);
file names may be any unicode.
"""

from __future__ import annotations

import textwrap
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from heygemd.errors import ProcessingError
from heygemd.faces.types import FaceObservation
from heygemd.report import Finding, Severity

RED = (230, 40, 40)  # RGB
AMBER = (250, 190, 20)
WHITE = (255, 255, 255)
LANDMARK = (60, 230, 230)
FONT = cv2.FONT_HERSHEY_SIMPLEX
JPEG_QUALITY = 90
_ASCII_FIXES = str.maketrans({"\u2014": "-", "\u2013": "-", "\u2019": "'", "\u00b0": " deg"})


def ascii_text(text: str) -> str:
    """Plain ASCII for cv2.putText: dashes/quotes/degree signs mapped, accents stripped."""
    text = unicodedata.normalize("NFKD", text.translate(_ASCII_FIXES))
    return text.encode("ascii", "ignore").decode("ascii")


def measurement_text(
    face: FaceObservation | None, occlusion: float | None, yaw: float | None = None
) -> str:
    """One line with what was measured on the frame, e.g. "yaw 38 deg  pitch -4 deg  mouth 0.82".

    yaw: the angle the rules used, when it differs from the face analyzer's ``face.yaw``.
    """
    if face is None:
        return "no face found"
    parts = [f"yaw {face.yaw if yaw is None else yaw:.0f} deg", f"pitch {face.pitch:.0f} deg"]
    if occlusion is not None:
        parts.append(f"mouth covered {occlusion:.2f}")
    return "  ".join(parts)


def _scale(image: np.ndarray) -> tuple[float, int]:
    """Font scale and line thickness for an image: legible from 240p to 4K."""
    side = min(image.shape[:2])
    return max(0.4, side / 900.0), max(1, round(side / 500))


def draw_face(image: np.ndarray, face: FaceObservation, color: tuple[int, int, int]) -> None:
    """Face box and landmarks onto ``image`` (RGB uint8 (H, W, 3)), in place."""
    _, thickness = _scale(image)
    x0, y0, x1, y1 = (round(c) for c in face.box)
    cv2.rectangle(image, (x0, y0), (x1, y1), color, thickness + 1, cv2.LINE_AA)
    radius = max(1, round(face.height / 250))
    for x, y in np.asarray(face.landmarks)[:, :2].round().astype(int):
        cv2.circle(image, (int(x), int(y)), radius, LANDMARK, -1)


def draw_text_band(image: np.ndarray, lines: Sequence[str], color: tuple[int, int, int]) -> None:
    """Lines of text on a darkened band at the bottom of ``image``, in place; wrapped to fit."""
    font_scale, thickness = _scale(image)
    height, width = image.shape[:2]
    (char_w, char_h), baseline = cv2.getTextSize("M", FONT, font_scale, thickness)
    per_line = max(10, int(width * 0.96 / char_w))
    wrapped = [w for line in lines for w in textwrap.wrap(ascii_text(line), per_line) or [""]]
    line_h = char_h + baseline + max(2, char_h // 2)
    band_h = min(height, line_h * len(wrapped) + line_h // 2)
    band = image[height - band_h :]
    band[:] = (band.astype(np.uint16) * 35 // 100).astype(np.uint8)
    y = height - band_h + line_h
    for i, text in enumerate(wrapped):
        shade = color if i == 0 else WHITE
        x = max(2, int(width * 0.02))
        cv2.putText(image, text, (x, y), FONT, font_scale, shade, thickness, cv2.LINE_AA)
        y += line_h


def annotate(
    frame: np.ndarray,
    face: FaceObservation | None,
    findings: Sequence[Finding],
    frame_index: int | None = None,
    occlusion: float | None = None,
    yaw: float | None = None,
) -> np.ndarray:
    """A copy of ``frame`` (RGB uint8 (H, W, 3)) with the face and the findings drawn on it.

    The first line says what was measured on this frame; each finding follows as
    "REFUSED code: message" or "WARNING code: message". Red for refusals, amber for warnings.
    occlusion, yaw: the speaker's measured values the rules used on this frame.
    """
    image = np.ascontiguousarray(frame, dtype=np.uint8).copy()
    refused = any(f.severity is Severity.REFUSE for f in findings)
    color = RED if refused else AMBER
    if face is not None:
        draw_face(image, face, color)
    where = f"frame {frame_index}: " if frame_index is not None else ""
    lines = [where + measurement_text(face, occlusion, yaw)]
    for f in findings:
        label = "REFUSED" if f.severity is Severity.REFUSE else "WARNING"
        lines.append(f"{label} {f.code}: {f.message}")
    draw_text_band(image, lines, color)
    return image


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """RGB uint8 (H, W, 3) -> JPEG bytes."""
    ok, buffer = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ProcessingError(f"could not encode a {image.shape} picture as JPEG")
    return buffer.tobytes()


def save_jpeg(path: Path, image: np.ndarray) -> None:
    """Write ``image`` (RGB uint8) as a JPEG; any unicode ``path`` works (no cv2.imwrite)."""
    try:
        path.write_bytes(encode_jpeg(image))
    except OSError as err:
        raise ProcessingError(f"could not write picture {path.name}: {err}") from err
