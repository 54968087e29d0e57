"""The preview picture: what is sampled, the loudness per frame, and the drawing (synthetic)."""

from __future__ import annotations

import numpy as np
import pytest

from heygemd import preview
from heygemd.contract import AUDIO_RATE
from heygemd.faces.types import FaceObservation


def paced(analyzer: object = None) -> preview.Sampler:
    """A sampler paced for 50 frames at 25 fps, as the pipeline paces it."""
    sampler = preview.Sampler(analyzer)  # type: ignore[arg-type]
    sampler.pace(50, 25.0)
    return sampler


def test_sampling_keeps_about_four_frames_a_second_and_at_most_the_cap() -> None:
    assert preview.sample_step(125, 25.0) == 6
    assert preview.sample_step(300 * 30, 30.0) == 38  # 5 min at 30 fps: <= MAX_SAMPLES kept
    sampler = paced()
    for i in range(50):
        sampler.see(i, np.zeros((1080, 1920, 3), np.uint8))
    assert [i for i, _ in sampler.kept] == list(range(0, 50, 6))
    assert sampler.kept[0][1].shape == (180, 320, 3)  # shrunk while kept


def test_loudness_follows_the_voice_under_each_frame() -> None:
    t = np.arange(AUDIO_RATE * 2) / AUDIO_RATE
    audio = np.where(t < 1.0, 0.5 * np.sin(2 * np.pi * 220 * t), 0.0).astype(np.float32)
    level = preview.loudness_db(audio, 25.0, 60)  # 60 frames: 2.4 s, past the audio's end
    assert np.all(level[:25] > -10) and np.all(level[25:] == preview.FLOOR_DB)


class Mouths:
    """A stand-in analyzer: a face whose mouth opens with the frame index, none after 40."""

    def analyze(self, frame: np.ndarray, frame_index: int) -> list[FaceObservation]:
        if frame_index >= 40:
            return []
        marks = np.zeros((478, 3), np.float32)
        marks[:, 0] = np.linspace(0, 100, 478)
        marks[13, 1], marks[14, 1] = 50.0, 50.0 + frame_index % 10  # inner lips apart
        return [FaceObservation(frame_index, (0.0, 0.0, 100.0, 100.0), 0.9, marks, 0, 0, 0)]


def test_the_picture_has_the_sheet_above_the_timeline_and_shades_missing_faces() -> None:
    sampler = paced()
    for i in range(50):
        sampler.see(i, np.full((480, 640, 3), 90, np.uint8))
    opened = preview.openings(sampler.kept, Mouths())
    assert np.isnan(opened[-1]) and np.all(np.isfinite(opened[:-2]))
    audio = (0.3 * np.sin(np.arange(2 * AUDIO_RATE) / 8.0)).astype(np.float32)
    image = preview.picture(sampler, Mouths(), audio, 25.0, 50)
    width = preview.SHEET_COLUMNS * preview.THUMB_WIDTH
    assert image.dtype == np.uint8 and image.shape[1] == width and image.shape[2] == 3
    plot = image[-preview.PLOT_HEIGHT:][: preview.PLOT_HEIGHT - 34]  # above axis and legend
    missing = np.all(plot == preview.MISSING, axis=2)
    assert missing[:, width * 9 // 10:].any() and not missing[:, : width // 2].any()
    assert np.all(plot == preview.MOUTH, axis=2).any()  # the mouth line is drawn


class Recording(Mouths):
    """Mouths that notes the thread each frame was measured in; fails on ``fail_at``."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.threads: set[str] = set()
        self.fail_at = fail_at

    def analyze(self, frame: np.ndarray, frame_index: int) -> list[FaceObservation]:
        import threading

        self.threads.add(threading.current_thread().name)
        if frame_index == self.fail_at:
            raise RuntimeError("the analyzer broke")
        return super().analyze(frame, frame_index)


def test_given_the_analyzer_the_sampler_measures_while_frames_come_and_agrees() -> None:
    frames = [np.full((480, 640, 3), i, np.uint8) for i in range(50)]
    plain = paced()
    analyzer = Recording()
    measuring = paced(analyzer)
    for i, frame in enumerate(frames):
        plain.see(i, frame)
        measuring.see(i, frame)
    opened = measuring.openings_of(Mouths())
    np.testing.assert_array_equal(opened, preview.openings(plain.kept, Mouths()))
    assert analyzer.threads == {"preview-measure"}  # none measured in the caller's thread
    measuring.close()  # after openings_of: nothing left to end


def test_a_failing_measure_reaches_the_caller_and_close_ends_the_thread() -> None:
    import threading

    failing = paced(Recording(fail_at=12))
    for i in range(50):
        failing.see(i, np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(RuntimeError, match="broke"):
        failing.openings_of(Mouths())
    stopped = paced(Recording())
    for i in range(20):
        stopped.see(i, np.zeros((48, 64, 3), np.uint8))
    stopped.close()  # e.g. the encode failed: the thread ends, the rest is dropped
    assert not any(t.name == "preview-measure" for t in threading.enumerate())


def test_measured_meanwhile_only_the_frames_shown_are_kept_and_the_picture_is_the_same() -> None:
    # 2 minutes at 25 fps: every 13th frame sampled (231), 8 kept (the rest measured, let go)
    count, audio = 3000, (0.3 * np.sin(np.arange(120 * AUDIO_RATE) / 8.0)).astype(np.float32)
    everything, measuring = preview.Sampler(), preview.Sampler(Recording())
    for sampler in (everything, measuring):
        sampler.pace(count, 25.0)
        for i in range(count):
            sampler.see(i, np.full((48, 64, 3), i % 251, np.uint8))
    assert len(measuring.seen) == len(everything.kept) == 231
    assert [i for i, _ in measuring.kept] == \
        [measuring.seen[p] for p in preview.thumb_picks(231)]
    np.testing.assert_array_equal(preview.picture(measuring, None, audio, 25.0, count),
                                  preview.picture(everything, Mouths(), audio, 25.0, count))


def test_a_video_shorter_than_its_pace_still_gets_its_pictures() -> None:
    sampler = preview.Sampler(Recording())
    sampler.pace(3000, 25.0)  # the engine stopped at a third of the frames it planned
    for i in range(1000):
        sampler.see(i, np.full((48, 64, 3), i % 251, np.uint8))
    candidates = sampler.shown_candidates()
    assert candidates[-1][0] == sampler.seen[-1]  # the sheet still ends at the video's end
    assert len(candidates) == 4  # 3 of the foreseen picks fell inside, and the last sample
    audio = np.zeros(40 * AUDIO_RATE, np.float32)
    drawn: list[list[tuple[float, np.ndarray]]] = []
    real = preview.preview
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(preview, "preview", lambda thumbs, *a: drawn.append(thumbs) or real(
            thumbs, *a))
        image = preview.picture(sampler, None, audio, 25.0, 1000)
    assert image.shape[1] == preview.SHEET_COLUMNS * preview.THUMB_WIDTH
    times = [t for t, _ in drawn[0]]
    assert times == sorted(set(times)) and len(times) == 4
    assert times[-1] == sampler.seen[-1] / 25.0  # the last picture is the video's end
    assert int(drawn[0][-1][1][0, 0, 0]) == sampler.seen[-1] % 251
    assert len(sampler.openings_of(None)) == len(sampler.seen)


def test_frames_dropped_by_close_read_as_not_measured() -> None:
    import threading

    entered, release = threading.Event(), threading.Event()

    class Held(Mouths):
        def analyze(self, frame: np.ndarray, frame_index: int) -> list[FaceObservation]:
            if frame_index == 12:  # the third sample: held until the sampler is closing
                entered.set()
                release.wait(5)
            return super().analyze(frame, frame_index)

    sampler = paced(Held())
    for i in range(50):
        sampler.see(i, np.zeros((48, 64, 3), np.uint8))
    assert entered.wait(5)
    threading.Timer(0.2, release.set).start()
    sampler.close()  # the third is finished; the six after it are dropped
    opened = sampler.openings_of(None)
    assert len(opened) == len(sampler.seen) == 9
    assert np.isfinite(opened[:3]).all() and np.isnan(opened[3:]).all()
