"""Pictures of findings, made for the person who sent the video: the deciding frame with the face
box and landmarks on it and, beside or below it (never over it), a panel that says in plain
words what is wrong, what was measured against which limit, and when in the video.

The canvas holds the frame resized by :func:`frame_scale` (small frames enlarged, huge ones
shrunk) at its top-left corner; the text panel lies below landscape frames and to the right of
portrait ones. Drawing is pure (RGB array in, RGB array out); :func:`save_jpeg` is the one
function that writes a file. Drawn text is ASCII (OpenCV's Hershey fonts have no other glyphs);
file names may be any unicode and are not drawn.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from heygemd.errors import ProcessingError
from heygemd.faces import landmarks as lm
from heygemd.faces.types import FaceObservation
from heygemd.report import Finding, Severity
from heygemd.validation.rules.common import clock

RED = (230, 40, 40)  # RGB
AMBER = (250, 190, 20)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
GREY = (170, 170, 170)
PANEL = (32, 32, 36)
LANDMARK = (60, 230, 230)
FONT = cv2.FONT_HERSHEY_SIMPLEX
JPEG_QUALITY = 90
MIN_SHORT_SIDE = 480  # px: small frames are enlarged to this so the face can be seen
MAX_LONG_SIDE = 1280  # px: huge frames are shrunk to this
PORTRAIT = 1.1  # height / width above which the panel goes beside the frame, not below
NBSP = "\u00a0"  # binds a number to its unit: word wrap never splits "43 degrees"
_ASCII_FIXES = str.maketrans({"\u2014": "-", "\u2013": "-", "\u2019": "'", "\u00b0": " deg"})
_UNIT = re.compile(r"(\d%?) (degrees|deg|pixels|seconds|frames)\b")


def ascii_text(text: str) -> str:
    """Plain ASCII for cv2.putText: dashes/quotes/degree signs mapped, accents stripped."""
    text = unicodedata.normalize("NFKD", text.translate(_ASCII_FIXES))
    return text.encode("ascii", "ignore").decode("ascii")


# ---------------------------------------------------------------- words


def _deg(v: float) -> str:
    return f"{v:.0f}{NBSP}degrees"


def _pct(v: float) -> str:
    return f"{v * 100:.0f}%"


def _lightness(v: float, m: float) -> str:
    return f"lightness {v:.1f} of 100 on the face's best-lit skin; under {m:.1f} is too dark"


# What each finding is, as the end of "Refused: ..." / "Accepted, with a warning: ...".
TITLES = {
    "face_turned": "the person is turned away from the camera",
    "face_tilted": "the person looks up or down, not into the camera",
    "face_turned_briefly": "the person turns away from the camera for a moment",
    "no_face": "no face can be seen",
    "face_missing_briefly": "the face is missing for a moment",
    "face_too_small": "the face is too small",
    "mouth_covered": "the mouth is covered",
    "mouth_covered_briefly": "something covers the mouth for a moment",
    "hand_at_mouth": "a hand comes in front of the chin or mouth",
    "face_too_dark": "the face is too dark to tell whether the mouth is free",
    "face_dark_briefly": "the face is too dark to see the mouth for a moment",
    "several_faces": "more than one face can be seen",
    "low_resolution": "the video is small, so the result may look soft",
    "resolution_too_low": "the video is too small",
    "variable_frame_rate": "the frame rate changes during the video",
}

# The finding's measured value against its limit, in words (value, limit -> text).
_MEASURES: dict[str, Callable[[float, float], str]] = {
    "face_turned": lambda v, m: f"turned {_deg(v)} away; at most {_deg(m)} allowed",
    "face_tilted": lambda v, m: f"looks {_deg(v)} up or down; at most {_deg(m)} allowed",
    "face_turned_briefly": lambda v, m: (
        f"turned away in {_pct(v)} of the video; refused only above {_pct(m)}"
    ),
    "no_face": lambda v, m: f"no face in {_pct(v)} of the video; at most {_pct(m)} allowed",
    "face_missing_briefly": lambda v, m: (
        f"no face in {_pct(v)} of the video; refused only above {_pct(m)}"
    ),
    "face_too_small": lambda v, m: (
        f"the face fills {_pct(v)} of the picture height; at least {_pct(m)} needed"
    ),
    "mouth_covered": lambda v, m: (
        f"mouth covered {v:.2f} on a scale from 0 (free) to 1 (hidden); at most {m:.2f} allowed"
    ),
    "mouth_covered_briefly": lambda v, m: (
        f"mouth covered {v:.2f} on a scale from 0 (free) to 1 (hidden); above {m:.2f} counts"
    ),
    "hand_at_mouth": lambda v, m: (
        f"a hand covers {v * 100:.1f}% of the lower face; {m * 100:.1f}% or more counts"
    ),
    "face_too_dark": _lightness,
    "face_dark_briefly": _lightness,
    "several_faces": lambda v, m: f"{v:.0f} faces; {m:.0f} expected",
    "low_resolution": lambda v, m: (
        f"{v:.0f}{NBSP}pixels on the short side; {m:.0f}{NBSP}or more looks best"
    ),
    "resolution_too_low": lambda v, m: (
        f"{v:.0f}{NBSP}pixels on the short side; at least {m:.0f} needed"
    ),
}

_MOUTH_CODES = {"mouth_covered", "mouth_covered_briefly", "hand_at_mouth", "face_too_dark",
                "face_dark_briefly"}
_TURN_CODES = {"face_turned", "face_turned_briefly"}


def title(finding: Finding) -> str:
    """What the finding is, in plain words ("the mouth is covered"); never its code."""
    return TITLES.get(finding.code) or finding.message.split(";")[0].rstrip(".")


def headline(findings: Sequence[Finding]) -> str:
    """The first finding as a verdict in plain words: "Refused: the mouth is covered" or
    "Accepted, with a warning: ..."."""
    if not findings:
        return "Accepted"
    refused = any(f.severity is Severity.REFUSE for f in findings)
    verdict = "Refused" if refused else "Accepted, with a warning"
    return f"{verdict}: {title(findings[0])}"


def measured_text(finding: Finding) -> str | None:
    """The finding's value against its limit in words, e.g. "turned 43 degrees away; at most
    30 degrees allowed"; None when the finding carries no numbers."""
    v, m = finding.value, finding.limit
    if not isinstance(v, int | float) or not isinstance(m, int | float):
        return None if v is None else f"measured {v}" + ("" if m is None else f"; limit {m}")
    measure = _MEASURES.get(finding.code)
    return measure(float(v), float(m)) if measure else f"measured {v:g}; limit {m:g}"


def moment_text(
    finding: Finding,
    face: FaceObservation | None,
    frame_index: int | None,
    fps: float | None,
    occlusion: float | None = None,
    yaw: float | None = None,
) -> str:
    """Where the picture is in the video and what it shows, e.g. "This picture is at 0:01.0 in the
    video; here the head is turned 63 degrees." (times as m:ss.s from frame_index / fps)."""
    code = finding.code
    what = None
    if face is None:
        what = "no face was found"
    elif code in _TURN_CODES:
        what = f"the head is turned {_deg(abs(face.yaw if yaw is None else yaw))}"
    elif code == "face_tilted":
        what = f"the head is tilted {_deg(abs(face.pitch))}"
    elif code == "hand_at_mouth" and isinstance(finding.value, float):
        what = f"a hand covers {finding.value * 100:.1f}% of the lower face"  # the worst frame's
    elif code in ("face_too_dark", "face_dark_briefly"):
        what = None  # the panel's measure says how dark
    elif code in _MOUTH_CODES and occlusion is not None:
        what = f"the mouth is covered {occlusion:.2f}"
    if frame_index is None or not fps:
        return f"In this picture {what}." if what else ""
    when = f"This picture is at {clock(frame_index / fps)} in the video"
    return f"{when}; here {what}." if what else f"{when}."


# ---------------------------------------------------------------- layout


def frame_scale(height: int, width: int) -> float:
    """Factor the frame is resized by on the canvas: its short side to at least MIN_SHORT_SIDE,
    then its long side to at most MAX_LONG_SIDE (the long side wins for extreme shapes)."""
    scale = max(1.0, MIN_SHORT_SIDE / min(height, width))
    return min(scale, MAX_LONG_SIDE / max(height, width))


def fit_frame(frame: np.ndarray) -> np.ndarray:
    """``frame`` (RGB uint8 (H, W, 3)) resized by :func:`frame_scale`; a copy either way."""
    height, width = frame.shape[:2]
    scale = frame_scale(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == (width, height):
        return np.ascontiguousarray(frame, dtype=np.uint8).copy()
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(frame, dtype=np.uint8), size, interpolation=method)


def is_portrait(height: int, width: int) -> bool:
    """Whether the panel goes beside the frame (tall frames) instead of below it."""
    return height > width * PORTRAIT


def _text_width(text: str, scale: float, thickness: int) -> int:
    shown = ascii_text(text.replace(NBSP, " "))
    return int(cv2.getTextSize(shown, FONT, scale, thickness)[0][0])


def _longest_fit(word: str, width: int, scale: float, thickness: int) -> int:
    """How many leading characters of ``word`` fit in ``width`` px (at least 1)."""
    fits = (
        n for n in range(len(word) - 1, 1, -1) if _text_width(word[:n], scale, thickness) <= width
    )
    return next(fits, 1)


def wrap_words(text: str, width: int, scale: float, thickness: int = 1) -> list[str]:
    """``text`` in lines at most ``width`` px wide in FONT at ``scale``, broken at spaces only
    (NBSP binds a number to its unit). A single word wider than a line is split, as a last
    resort, rather than drawn off the canvas."""
    lines: list[str] = []
    line = ""
    for word in (w for w in re.split(r"[ \t\n]+", text) if w):
        candidate = f"{line} {word}" if line else word
        if _text_width(candidate, scale, thickness) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        while len(word) > 1 and _text_width(word, scale, thickness) > width:
            cut = _longest_fit(word, width, scale, thickness)
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    return lines + [line] if line else lines


@dataclass(frozen=True)
class _Text:
    """One paragraph of the panel: wrapped to the panel width when drawn."""

    text: str
    scale: float
    thickness: int
    color: tuple[int, int, int]
    gap: float = 0.5  # blank space above, in line heights


def _block(paragraphs: Sequence[_Text], width: int, background: tuple[int, int, int]) -> np.ndarray:
    """Paragraphs drawn on a ``width``-wide RGB block as tall as they need."""
    margin = max(10, width // 30)
    rows: list[tuple[str, _Text, int]] = []  # text, style, y of its baseline
    y = margin // 2
    for p in paragraphs:
        (_, char_h), base = cv2.getTextSize("Mg", FONT, p.scale, p.thickness)
        line_h = round((char_h + base) * 1.35)
        y += round(line_h * p.gap)
        bound = _UNIT.sub(rf"\1{NBSP}\2", p.text)
        for text in wrap_words(bound, width - 2 * margin, p.scale, p.thickness):
            y += line_h
            rows.append((text, p, y - base - (line_h - char_h - base) // 2))  # centred in its line
    block = np.empty((y + margin // 2 + 4, width, 3), np.uint8)
    block[:] = background
    for text, p, baseline in rows:
        shown = ascii_text(text.replace(NBSP, " "))
        cv2.putText(
            block, shown, (margin, baseline), FONT, p.scale, p.color, p.thickness, cv2.LINE_AA
        )
    return block


def _panel(
    findings: Sequence[Finding], moment: str, frame_index: int | None, width: int, size: int
) -> np.ndarray:
    """Headline banner in the verdict's colour, then each finding's message and numbers, then
    where the picture is in the video; ``width`` px wide, text sized for a frame shown ``size``
    px along its long side."""
    refused = any(f.severity is Severity.REFUSE for f in findings)
    body = float(np.clip(size / 1150, 0.55, 0.95))
    thin = max(1, round(body * 1.8))
    bold = thin + 1
    ink = WHITE if refused else BLACK
    verdict = _Text(headline(findings), body * 1.3, max(2, round(body * 3)), ink, gap=0.3)
    banner = _block([verdict], width, RED if refused else AMBER)
    accent = (255, 120, 120) if refused else AMBER
    paragraphs = []
    for i, f in enumerate(findings):
        if i:
            paragraphs.append(_Text(f"Also: {title(f)}", body * 1.1, bold, accent, gap=0.9))
        paragraphs.append(_Text(f.message, body, thin, WHITE, gap=0.2))
        measured = measured_text(f)
        if measured:
            paragraphs.append(_Text(f"Measured: {measured}", body, bold, accent, gap=0.4))
    small = f"(frame {frame_index})" if frame_index is not None else ""
    if moment or small:
        paragraphs.append(_Text(f"{moment} {small}".strip(), body * 0.85, thin, GREY, gap=0.7))
    return np.vstack([banner, _block(paragraphs, width, PANEL)])


# ---------------------------------------------------------------- the frame


# Landmark outlines drawn on the face (index groups of the mesh), and points marked as dots.
_OUTLINES = ((lm.FACE_OVAL, True), (lm.LIPS_OUTER, True), (lm.NOSE_BRIDGE + (lm.NOSE_TIP,), False))
_KEY_POINTS = lm.EYE_CORNERS + (lm.RIGHT_IRIS_CENTER, lm.LEFT_IRIS_CENTER, lm.NOSE_TIP)


# A face drawn smaller than this share of the picture's longer side is also ringed, this share
# in radius: on a 1280x720 frame a face of 6% of the height (43 px) gets a 80 px ring.
SMALL_FACE_RING = 1 / 16


def draw_face(
    image: np.ndarray,
    face: FaceObservation,
    color: tuple[int, int, int],
    scale: float = 1.0,
    mouth: bool = False,
) -> None:
    """Face box and landmarks onto ``image`` (RGB uint8 (H, W, 3)), in place; the face's
    coordinates are multiplied by ``scale`` (the frame's resize). A full mesh is drawn as thin
    outlines (face, lips, nose) and dots (eye corners, irises); other landmark sets as dots.
    ``mouth``: ring the mouth (mouth findings). A small face is ringed too (SMALL_FACE_RING)."""
    thickness = max(2, round(min(image.shape[:2]) / 360))
    x0, y0, x1, y1 = (round(c * scale) for c in face.box)
    cv2.rectangle(image, (x0, y0), (x1, y1), color, thickness, cv2.LINE_AA)
    ring = max(image.shape[:2]) * SMALL_FACE_RING
    if max(x1 - x0, y1 - y0) < ring:  # a far-away face: ringed, to be found at a glance
        centre = (round((x0 + x1) / 2), round((y0 + y1) / 2))
        cv2.circle(image, centre, round(ring), color, thickness, cv2.LINE_AA)
    points = mesh = np.asarray(face.landmarks)[:, :2] * scale
    radius = max(1, round(min(image.shape[:2]) / 400))
    if len(points) > max(lm.LIPS_OUTER + lm.FACE_OVAL):  # a full mesh: outlines, not 478 dots
        for contour, closed in _OUTLINES:
            line = points[list(contour)].round().astype(np.int32)
            cv2.polylines(image, [line], closed, LANDMARK, 1, cv2.LINE_AA)
        points = points[list(_KEY_POINTS)]
    for x, y in points.round().astype(int):
        cv2.circle(image, (int(x), int(y)), radius, LANDMARK, -1)
    if mouth and len(mesh) > max(lm.LIPS_OUTER):
        lips = mesh[list(lm.LIPS_OUTER)]
        center = lips.mean(axis=0)
        half = np.maximum((lips.max(axis=0) - lips.min(axis=0)) * 0.8, face.height * scale / 12)
        axes = (round(half[0]), round(half[1]))
        center_px = (round(center[0]), round(center[1]))
        cv2.ellipse(image, center_px, axes, 0, 0, 360, color, thickness + 1, cv2.LINE_AA)


def annotate(
    frame: np.ndarray,
    face: FaceObservation | None,
    findings: Sequence[Finding],
    frame_index: int | None = None,
    occlusion: float | None = None,
    yaw: float | None = None,
    fps: float | None = None,
) -> np.ndarray:
    """The picture of ``findings`` on ``frame`` (RGB uint8 (H, W, 3)), as a new RGB canvas.

    The canvas holds the frame resized by :func:`frame_scale` at its top-left corner, with the
    face box (red for refusals, amber for warnings) and landmarks on it and the mouth ringed for
    mouth findings; nothing else is drawn over the frame. The text panel sits below it (or to the
    right, for portrait frames): a headline in plain words, each finding's message and measured
    value against its limit, and the time in the video (frame_index / fps, as m:ss.s).
    occlusion, yaw: the speaker's measured values the rules used on this frame.
    """
    image = fit_frame(frame)
    height, width = frame.shape[:2]
    scale = image.shape[1] / width
    refused = any(f.severity is Severity.REFUSE for f in findings)
    if face is not None:
        mouth = any(f.code in _MOUTH_CODES for f in findings)
        draw_face(image, face, RED if refused else AMBER, scale, mouth)
    first = findings[0] if findings else None
    moment = moment_text(first, face, frame_index, fps, occlusion, yaw) if first else ""
    shown = max(image.shape[:2])
    if not is_portrait(height, width):
        return np.vstack([image, _panel(findings, moment, frame_index, image.shape[1], shown)])
    column_width = int(np.clip(image.shape[1] * 0.9, 480, 760))
    column = _panel(findings, moment, frame_index, column_width, shown)
    canvas = np.empty(
        (max(image.shape[0], column.shape[0]), image.shape[1] + column.shape[1], 3), np.uint8
    )
    canvas[:] = PANEL
    canvas[: image.shape[0], : image.shape[1]] = image
    canvas[: column.shape[0], image.shape[1] :] = column
    return canvas


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
    data = encode_jpeg(image)
    try:
        path.write_bytes(data)
    except OSError as err:
        path.unlink(missing_ok=True)  # a picture cut short by a full disk is no picture
        raise ProcessingError(f"The picture {path.name} could not be written.") from err
