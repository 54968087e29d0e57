"""Pure validation rules: what was measured -> findings a person can act on.

No I/O here: :mod:`heygemd.validation.examine` probes files, samples frames, runs the face
analyzer and the VAD, and hands the results in as :class:`~heygemd.media.types.MediaInfo`,
:class:`~heygemd.validation.audiostats.AudioStats` and :class:`FrameEvidence`. Every rule names
the problem, the measured value, the limit, and (for picture rules) the deciding frame.

Rules on files and streams live in :mod:`.media`, rules on the sampled frames in :mod:`.faces`.
Deciding frames follow fixed criteria (:data:`FRAME_CRITERIA`), so the picture examine draws for
a finding shows the frame the rule decided on.
"""

from __future__ import annotations

from heygemd.validation.rules.common import MB, refusals
from heygemd.validation.rules.faces import (
    FRAME_CRITERIA,
    FrameEvidence,
    deciding_frame,
    validate_faces,
    validate_video,
)
from heygemd.validation.rules.media import (
    audio_content_findings,
    check_extension,
    check_file_size,
    validate_audio,
    validate_video_info,
)

__all__ = [
    "FRAME_CRITERIA",
    "MB",
    "FrameEvidence",
    "audio_content_findings",
    "check_extension",
    "check_file_size",
    "deciding_frame",
    "refusals",
    "validate_audio",
    "validate_faces",
    "validate_video",
    "validate_video_info",
]
