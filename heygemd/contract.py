"""What the floors agree on: the analysis audio rate and the progress callback.

Below everything (imports nothing of heygemd): media, validation, engines and the daemon all
speak these without importing one another.
"""

from __future__ import annotations

from collections.abc import Callable

# Hz: audio for analysis and for the engines is float32 (N,) mono at this rate.
AUDIO_RATE = 16000

# Called with the fraction (0..1) of the current video done. It may raise
# heygemd.errors.JobInterrupted: callers must let that propagate (it is a BaseException).
ProgressFn = Callable[[float], None]


def progress_span(progress: ProgressFn, start: float, stop: float) -> ProgressFn:
    """A callback for one part of a task: its fractions 0..1 reach ``progress`` as
    ``start``..``stop`` (e.g. examining is the first tenth of a video's progress)."""

    def part(fraction: float) -> None:
        progress(start + (stop - start) * fraction)

    return part
