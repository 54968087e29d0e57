"""Requests made of the real test media in ../shared/media, for tests anywhere in the suite."""

from __future__ import annotations

from pathlib import Path

from heygemd.contract import AUDIO_RATE
from heygemd.engines.base import RenderRequest

TEMPLATE = "talking/th08_woman_older_en_real3dportrait_May5s.mp4"
SPEECH = "speech/en01_male_jfk_inaugural_11s.flac"


def th08_request(shared_media: Path, seconds: float) -> RenderRequest:
    """th08 (5 s, 512x512) driven by the first ``seconds`` of JFK's speech."""
    from heygemd.media.audio import load_audio
    from heygemd.media.probe import probe

    template = shared_media / TEMPLATE
    audio = load_audio(shared_media / SPEECH, rate=AUDIO_RATE)[: int(seconds * AUDIO_RATE)]
    info = probe(template)
    assert info.video is not None
    return RenderRequest(template=template, info=info, audio=audio, fps=info.video.avg_fps)
