"""Every validation rule on synthetic evidence: codes, severities, values, limits, frames."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from heygemd.faces import geometry
from heygemd.media.types import AudioStreamInfo, MediaInfo, VideoStreamInfo
from heygemd.report import Severity
from heygemd.settings import LimitSettings, ValidationSettings
from heygemd.validation import rules as v
from heygemd.validation.audiostats import AudioStats
from heygemd.validation.rules import FrameEvidence

CFG = ValidationSettings()
LIMITS = LimitSettings()


def video_info(
    width: int = 1280,
    height: int = 720,
    seconds: float = 5.0,
    vfr: bool = False,
    size_mb: float = 5.0,
    audio: bool = True,
) -> MediaInfo:
    stream = VideoStreamInfo(
        codec="h264",
        width=width,
        height=height,
        rotation=0,
        avg_fps=25.0,
        real_fps=30.0 if vfr else 25.0,
        is_vfr=vfr,
        frame_count=int(seconds * 25),
        duration=seconds,
        pix_fmt="yuv420p",
        bit_rate=None,
    )
    return MediaInfo(
        path="x.mp4",
        container="mov,mp4,m4a,3gp,3g2,mj2",
        duration=seconds,
        size_bytes=int(size_mb * v.MB),
        bit_rate=None,
        video=stream,
        audio=audio_stream(seconds) if audio else None,
    )


def audio_stream(seconds: float) -> AudioStreamInfo:
    return AudioStreamInfo(
        codec="pcm_s16le",
        sample_rate=16000,
        channels=1,
        sample_format="s16",
        duration=seconds,
        bit_rate=None,
    )


def audio_info(seconds: float = 5.0, has_audio: bool = True) -> MediaInfo:
    return MediaInfo(
        path="a.wav",
        container="wav",
        duration=seconds,
        size_bytes=1000,
        bit_rate=None,
        audio=audio_stream(seconds) if has_audio else None,
    )


GOOD_AUDIO = AudioStats(
    duration_s=5.0,
    rms_dbfs=-20.0,
    peak_dbfs=-3.0,
    clipped_share=0.0,
    speech_share=0.8,
    snr_db=30.0,
)


def face(
    i: int,
    yaw: float = 0.0,
    pitch: float = 0.0,
    occ: float = 0.1,
    size: float = 0.3,
    count: int = 1,
) -> FrameEvidence:
    return FrameEvidence(i * 8, count, size, yaw, pitch, occ)


def no_face(i: int) -> FrameEvidence:
    return FrameEvidence(i * 8, 0)


def codes(findings: list) -> dict[str, Severity]:
    return {f.code: f.severity for f in findings}


# ---------------------------------------------------------------- files


@pytest.mark.parametrize("name", ["a.WAV", "b.mp3", "c.m4a", "d.aac", "e.flac", "f.Ogg"])
def test_audio_extensions_accepted_case_insensitively(name: str) -> None:
    assert v.check_extension(name, "audio") == []


@pytest.mark.parametrize("name", ["a.MP4", "b.avi", "c.mov", "d.mkv", "e.webm", "f.flv"])
def test_video_extensions_accepted(name: str) -> None:
    assert v.check_extension(name, "video") == []


def test_unsupported_extension_is_refused_with_the_allowed_list() -> None:
    [f] = v.check_extension("clip.wmv", "video")
    assert (f.code, f.severity, f.value) == ("unsupported_format", Severity.REFUSE, ".wmv")
    assert ".mp4" in f.message and "convert" in f.message
    [g] = v.check_extension("noext", "audio")
    assert g.value == ""


def test_file_too_large() -> None:
    [f] = v.check_file_size(int(5000 * v.MB), LIMITS)
    assert f.code == "file_too_large" and f.value == 5000.0 and f.limit == LIMITS.max_file_mb
    assert v.check_file_size(int(10 * v.MB), LIMITS) == []


# ---------------------------------------------------------------- audio


def test_good_audio_has_no_findings() -> None:
    assert v.validate_audio(audio_info(), GOOD_AUDIO, CFG, LIMITS) == []


def test_no_audio_stream() -> None:
    [f] = v.validate_audio(audio_info(has_audio=False), None, CFG, LIMITS)
    assert f.code == "no_audio_stream" and f.severity is Severity.REFUSE


@pytest.mark.parametrize(
    ("seconds", "code", "limit"),
    [(0.2, "audio_too_short", CFG.min_audio_seconds), (400.0, "audio_too_long", 300.0)],
)
def test_audio_duration(seconds: float, code: str, limit: float) -> None:
    stats = replace(GOOD_AUDIO, duration_s=seconds)
    [f] = v.validate_audio(audio_info(seconds), stats, CFG, LIMITS)
    assert (f.code, f.value, f.limit) == (code, seconds, limit)


def test_a_length_too_short_to_round_is_never_told_as_nothing() -> None:
    [one_frame] = v.validate_video_info(video_info(seconds=0.04), CFG, LIMITS)
    assert one_frame.code == "video_too_short" and "only 0.04 s long" in one_frame.message
    [short] = v.validate_video_info(video_info(seconds=0.5), CFG, LIMITS)
    assert "only 0.5 s long" in short.message


def test_duration_from_probe_when_samples_unreadable() -> None:
    [f] = v.validate_audio(audio_info(400.0), None, CFG, LIMITS)
    assert f.code == "audio_too_long"


def test_silent_audio_is_refused_alone() -> None:
    stats = replace(GOOD_AUDIO, rms_dbfs=-80.0, speech_share=0.0, snr_db=0.0)
    [f] = v.validate_audio(audio_info(), stats, CFG, LIMITS)
    assert (f.code, f.value, f.limit) == ("silent_audio", -80.0, CFG.silence_dbfs)
    assert "microphone" in f.message


def test_clipped_audio() -> None:
    [f] = v.audio_content_findings(replace(GOOD_AUDIO, clipped_share=0.05), CFG)
    assert (f.code, f.severity, f.value) == ("clipped_audio", Severity.REFUSE, 0.05)
    assert "5%" in f.message and "level turned down" in f.message


def test_too_little_speech() -> None:
    [f] = v.audio_content_findings(replace(GOOD_AUDIO, speech_share=0.02), CFG)
    assert (f.code, f.value, f.limit) == ("too_little_speech", 0.02, CFG.min_speech_share)


def test_a_few_damaged_samples_are_a_warning_with_their_length() -> None:
    [f] = v.audio_content_findings(replace(GOOD_AUDIO, damaged_s=0.002, damaged_from_s=12.34),
                                   CFG)
    assert (f.code, f.severity, f.limit) == ("damaged_audio", Severity.WARN,
                                             CFG.max_damaged_audio_share)
    assert "2 ms of the audio, from 0:12.3, is damaged" in f.message
    assert "replaced by silence" in f.message
    [one] = v.audio_content_findings(replace(GOOD_AUDIO, damaged_s=1 / 16000), CFG)
    assert one.message.startswith("less than 1 ms")


def test_much_damaged_audio_is_refused_as_damaged_not_as_silent() -> None:
    much = replace(GOOD_AUDIO, damaged_s=0.5)  # 10% of 5 s
    [f] = v.audio_content_findings(much, CFG)
    assert (f.code, f.severity, f.value) == ("damaged_audio", Severity.REFUSE, 0.1)
    assert "10% of it (500 ms, from 0:00.0)" in f.message and "Export the voice again" in f.message
    # just over the limit: the share is told to a tenth, not rounded down to the limit itself
    [near] = v.audio_content_findings(replace(GOOD_AUDIO, damaged_s=0.06), CFG)
    assert "1.2% of it" in near.message and "at most 1.0%" in near.message
    # a file of nothing but NaN decodes to silence: the damage is what the user is told
    whole = replace(GOOD_AUDIO, damaged_s=5.0, rms_dbfs=-100.0, speech_share=0.0, snr_db=0.0)
    assert [f.code for f in v.audio_content_findings(whole, CFG)] == ["damaged_audio"]
    assert v.audio_content_findings(GOOD_AUDIO, CFG) == []


def test_noisy_audio() -> None:
    [f] = v.audio_content_findings(replace(GOOD_AUDIO, snr_db=4.2), CFG)
    assert (f.code, f.value, f.limit) == ("noisy_audio", 4.2, CFG.min_snr_db)
    assert "4 dB" in f.message and "quieter place" in f.message


# ---------------------------------------------------------------- video container


def test_good_video_info_has_no_findings() -> None:
    assert v.validate_video_info(video_info(), CFG, LIMITS) == []


def test_no_video_stream() -> None:
    info = replace(video_info(), video=None)
    [f] = v.validate_video_info(info, CFG, LIMITS)
    assert f.code == "no_video_stream" and f.severity is Severity.REFUSE
    assert v.validate_video(info, [face(0)], CFG, LIMITS) == [f]


def test_low_resolution_warns_and_tiny_refuses() -> None:
    [w] = v.validate_video_info(video_info(512, 512), CFG, LIMITS)
    assert (w.code, w.severity, w.value, w.limit) == ("low_resolution", Severity.WARN, 512, 720)
    [r] = v.validate_video_info(video_info(320, 200), CFG, LIMITS)
    assert (r.code, r.severity, r.value) == ("resolution_too_low", Severity.REFUSE, 200)
    assert v.validate_video_info(video_info(1080, 1920), CFG, LIMITS) == []


def test_too_many_pixels() -> None:
    found = codes(v.validate_video_info(video_info(7680, 4320), CFG, LIMITS))
    assert found == {"too_many_pixels": Severity.REFUSE}


@pytest.mark.parametrize(("seconds", "code"), [(0.5, "video_too_short"), (301.0, "video_too_long")])
def test_video_duration(seconds: float, code: str) -> None:
    [f] = v.validate_video_info(video_info(seconds=seconds), CFG, LIMITS)
    assert f.code == code and f.value == seconds


def test_variable_frame_rate_warns() -> None:
    [f] = v.validate_video_info(video_info(vfr=True), CFG, LIMITS)
    assert (f.code, f.severity) == ("variable_frame_rate", Severity.WARN)
    assert "25.00" in f.message


# ---------------------------------------------------------------- faces


def test_frontal_steady_face_passes() -> None:
    assert v.validate_faces([face(i) for i in range(30)], CFG, 25.0) == []


def test_no_frames_refused() -> None:
    [f] = v.validate_faces([], CFG, 25.0)
    assert f.code == "no_frames"


def test_no_face_in_most_frames_is_refused_at_the_first_empty_frame() -> None:
    frames = [face(0)] + [no_face(i) for i in range(1, 10)]
    found = v.validate_faces(frames, CFG, 25.0)
    [f] = [x for x in found if x.code == "no_face"]
    assert f.severity is Severity.REFUSE and f.value == 0.9 and f.frame_index == 8
    assert "0:00.3" in f.message


def test_briefly_missing_face_warns() -> None:
    frames = [face(i) for i in range(9)] + [no_face(9)]
    [f] = v.validate_faces(frames, CFG, 25.0)
    assert (f.code, f.severity, f.frame_index) == ("face_missing_briefly", Severity.WARN, 72)
    assert "passed through unchanged" in f.message


def test_face_too_small() -> None:
    frames = [face(i, size=0.04) for i in range(5)] + [face(5, size=0.03)]
    [f] = v.validate_faces(frames, CFG, 25.0)
    assert (f.code, f.value, f.frame_index) == ("face_too_small", 0.04, 40)


@pytest.mark.parametrize("size", [0.04, 0.05])
def test_a_far_away_face_is_too_small_in_words_not_missing(size: float) -> None:
    [f] = v.validate_faces([face(i, size=size) for i in range(10)], CFG, 25.0)
    assert (f.code, f.severity) == ("face_too_small", Severity.REFUSE)
    assert f.message.startswith("The face is too small:") and "closer" in f.message
    assert "No face" not in f.message and "well lit" not in f.message


def test_turned_face_in_most_frames_is_refused() -> None:
    frames = [face(i, yaw=38.0 + (i == 4) * 10) for i in range(7)] + [face(i) for i in range(7, 10)]
    [f] = v.validate_faces(frames, CFG, 25.0)
    assert (f.code, f.severity, f.value, f.limit) == ("face_turned", Severity.REFUSE, 38.0, 30.0)
    assert f.frame_index == 32  # the most turned frame
    assert "turned 38 degrees" in f.message and "70%" in f.message
    assert "turn to face the camera" in f.message


def test_negative_yaw_counts_as_turned_too() -> None:
    frames = [face(i, yaw=-45.0) for i in range(10)]
    [f] = v.validate_faces(frames, CFG, 25.0)
    assert f.code == "face_turned" and f.value == 45.0


def test_brief_turn_is_a_warning() -> None:
    frames = [face(i) for i in range(9)] + [face(9, yaw=50.0)]
    [f] = v.validate_faces(frames, CFG, 25.0)
    assert (f.code, f.severity, f.value, f.frame_index) == (
        "face_turned_briefly",
        Severity.WARN,
        0.1,
        72,
    )
    assert "may look wrong" in f.message and "keep their own mouth" in f.message


def test_turn_share_exactly_at_limit_is_still_a_warning() -> None:
    frames = [face(i, yaw=40.0) for i in range(2)] + [face(i) for i in range(2, 10)]
    [f] = v.validate_faces(frames, CFG, 25.0)
    assert f.code == "face_turned_briefly"


def test_pitch_beyond_limit_refuses_as_tilted() -> None:
    frames = [face(i, pitch=40.0) for i in range(10)]
    [f] = v.validate_faces(frames, CFG, 25.0)
    assert (f.code, f.value, f.limit) == ("face_tilted", 40.0, CFG.max_pitch_degrees)
    assert "40 degrees down" in f.message
    [g] = v.validate_faces([face(i, pitch=-35.0) for i in range(10)], CFG, 25.0)
    assert "degrees up" in g.message


def test_yaw_and_pitch_turns_add_up() -> None:
    frames = (
        [face(i, yaw=40.0) for i in range(2)]
        + [face(i, pitch=40.0) for i in range(2, 3)]
        + [face(i) for i in range(3, 10)]
    )
    [f] = v.validate_faces(frames, CFG, 25.0)
    assert f.code == "face_turned" and f.severity is Severity.REFUSE


def test_covered_mouth_is_refused() -> None:
    frames = [face(i, occ=0.82) for i in range(10)]
    [f] = v.validate_faces(frames, CFG, 25.0)
    assert (f.code, f.severity, f.value, f.limit) == (
        "mouth_covered",
        Severity.REFUSE,
        0.82,
        CFG.mouth_covered_threshold,
    )
    assert "score 0.82" in f.message and "remove the mask" in f.message
    assert f.frame_index == 0


def test_briefly_covered_mouth_warns_at_the_worst_frame() -> None:
    frames = [face(i) for i in range(8)] + [face(8, occ=0.7), face(9, occ=0.9)]
    [f] = v.validate_faces(frames, CFG, 25.0)
    assert (f.code, f.severity, f.frame_index) == ("mouth_covered_briefly", Severity.WARN, 72)


def test_a_hand_at_the_chin_warns_at_the_frame_it_covers_most() -> None:
    frames = [face(i) for i in range(8)] + [replace(face(8), hand=0.03),
                                            replace(face(9), hand=0.08)]
    [f] = v.validate_faces(frames, CFG, 25.0)
    assert (f.code, f.severity, f.value, f.frame_index) == ("hand_at_mouth", Severity.WARN,
                                                            0.08, 72)
    assert "20% of the video, around 0:02.9" in f.message
    assert "Keep hands below the chin" in f.message


def test_a_hand_that_only_touches_the_face_or_covers_the_mouth_gives_no_hand_warning() -> None:
    touching = [face(i) for i in range(9)] + [replace(face(9), hand=0.01)]
    assert v.validate_faces(touching, CFG, 25.0) == []
    # a hand over the mouth reads as covered: one finding, the mouth-cover one
    covering = [face(i) for i in range(8)] + [replace(face(i, occ=0.9), hand=0.4)
                                              for i in (8, 9)]
    assert [f.code for f in v.validate_faces(covering, CFG, 25.0)] == ["mouth_covered_briefly"]
    # ... but a hand at the chin at another moment is told too
    both = covering[:2] + [replace(face(2), hand=0.05)] + covering[3:]
    assert [f.code for f in v.validate_faces(both, CFG, 25.0)] == ["mouth_covered_briefly",
                                                                   "hand_at_mouth"]


def test_a_face_too_dark_to_see_is_refused_as_dark_not_as_covered() -> None:
    dark = [replace(face(i, occ=1.0), light=20.0 + i) for i in range(10)]
    [f] = v.validate_faces(dark, CFG, 25.0)
    assert (f.code, f.severity, f.frame_index) == ("face_too_dark", Severity.REFUSE, 0)
    assert f.value == round(24.5 * 100 / 255, 1) and f.limit == round(40.0 / 2.55, 1)
    assert "too dark to tell whether the mouth is free in 100% of the video" in f.message
    assert "lightness 9.6 of 100" in f.message and "light the face" in f.message
    # a dim face whose mouth is seen is fine; a covered mouth on a lit face is still covered
    assert v.validate_faces([replace(face(i), light=15.0) for i in range(10)], CFG, 25.0) == []
    lit = [replace(face(i, occ=1.0), light=120.0) for i in range(10)]
    assert [f.code for f in v.validate_faces(lit, CFG, 25.0)] == ["mouth_covered"]


def test_the_dark_limit_is_where_the_cover_scores_mouth_line_stops_following_the_light() -> None:
    from heygemd.faces import occlusion
    from heygemd.validation.rules import faces

    floor = occlusion.LINE_DEPTH_LIGHT * occlusion.LINE_DEPTH_FLOOR[1] / occlusion.LINE_DEPTH_HIGH
    assert abs(faces.DARK_LIGHT - floor) < 1e-9


def test_dark_moments_warn_at_the_darkest_frame_beside_a_covered_one() -> None:
    frames = [face(i) for i in range(7)] + [replace(face(7, occ=0.9), light=200.0),
                                            replace(face(8, occ=0.9), light=20.0),
                                            replace(face(9, occ=0.9), light=10.0)]
    found = v.validate_faces(frames, CFG, 25.0)
    assert [(f.code, f.frame_index) for f in found] == [("mouth_covered_briefly", 56),
                                                       ("face_dark_briefly", 72)]
    assert "Light the face from the front" in found[1].message


def test_a_mouth_unseen_in_most_frames_is_refused_whether_covered_or_dark() -> None:
    """A mask worn throughout while the light drops for a while: 4 frames lit and covered, 3
    dark, each under the share allowed, together over it (review: it was accepted)."""
    frames = [face(i) for i in range(3)] \
        + [replace(face(i, occ=1.0), light=150.0) for i in range(3, 7)] \
        + [replace(face(i, occ=1.0), light=12.0) for i in range(7, 10)]
    [f] = v.validate_faces(frames, CFG, 25.0)
    assert (f.code, f.severity) == ("mouth_covered", Severity.REFUSE)
    assert "in 40% of the video; the face is too dark to see it in 30%" in f.message
    darker = frames[:3] + [replace(e, light=12.0) for e in frames[3:5]] + frames[5:]
    [g] = v.validate_faces(darker, CFG, 25.0)
    assert (g.code, g.severity) == ("face_too_dark", Severity.REFUSE)
    assert "free in 70% of the video" in g.message and "something covers it in 20%" in g.message


def test_several_faces_warn_with_the_most_crowded_frame() -> None:
    frames = [face(0), face(1, count=2), face(2, count=3), face(3, count=3)]
    [f] = v.validate_faces(frames, CFG, 25.0)
    assert (f.code, f.severity, f.value, f.frame_index) == ("several_faces", Severity.WARN, 3, 16)
    assert "speaker" in f.message


def test_thresholds_come_from_settings() -> None:
    frames = [face(i, yaw=25.0) for i in range(10)]
    assert v.validate_faces(frames, CFG, 25.0) == []
    strict = CFG.model_copy(update={"max_yaw_degrees": 20.0})
    [f] = v.validate_faces(frames, strict, 25.0)
    assert f.code == "face_turned" and f.limit == 20.0


def test_validate_video_combines_container_and_face_rules() -> None:
    frames = [face(i, occ=0.9) for i in range(10)]
    found = codes(v.validate_video(video_info(512, 512), frames, CFG, LIMITS))
    assert found == {"low_resolution": Severity.WARN, "mouth_covered": Severity.REFUSE}
    assert [f.code for f in v.refusals(v.validate_video(video_info(), frames, CFG, LIMITS))] == [
        "mouth_covered"
    ]


def test_deciding_frame_criteria() -> None:
    frames = [face(0, yaw=-10), face(1, yaw=20), no_face(2), face(3, yaw=-20)]
    assert v.deciding_frame(frames, "yaw") == frames[1]  # the first of equal scores
    assert v.deciding_frame(frames, "no_face") == frames[2]
    assert v.deciding_frame(frames, "face_count") is None
    assert v.deciding_frame(frames, "representative") == frames[0]
    assert v.deciding_frame([no_face(0)], "representative") == no_face(0)


# ---------------------------------------------------------------- pose for validation


def project_generic_head(yaw: float, pitch: float = 0.0) -> np.ndarray:
    """Mesh-like landmarks (478, 3): the generic head turned by yaw/pitch, seen by a pinhole
    camera (focal 1000 px) from 2000 units away, at the geometry.GENERIC_HEAD indices."""
    a, b = np.radians(yaw), np.radians(pitch)
    turn = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    nod = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    model = geometry.GENERIC_HEAD @ (turn @ nod).T
    camera = np.stack([model[:, 0], -model[:, 1], 2000.0 - model[:, 2]], axis=1)  # y down
    landmarks = np.zeros((478, 3), np.float32)
    landmarks[geometry.GENERIC_HEAD_LANDMARKS, 0] = 500 + 1000 * camera[:, 0] / camera[:, 2]
    landmarks[geometry.GENERIC_HEAD_LANDMARKS, 1] = 500 + 1000 * camera[:, 1] / camera[:, 2]
    return landmarks


@pytest.mark.parametrize("yaw", [-45.0, -31.0, 0.0, 12.0, 38.0])
def test_generic_yaw_recovers_a_known_turn(yaw: float) -> None:
    assert geometry.generic_head_yaw(project_generic_head(yaw, 5.0), (1000, 1000)) == pytest.approx(
        yaw, abs=1.5
    )


def project_canonical_face(yaw: float) -> np.ndarray:
    """Landmarks (478, 3) of mediapipe's canonical face (landmarks.CANONICAL_POSE_POINTS, cm)
    turned by yaw (> 0: to the image's right), seen by a pinhole camera (focal 1000 px) from
    60 cm, in a 1000x1000 frame."""
    from heygemd.faces import landmarks as lm

    a = np.radians(yaw)
    turn = np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])
    landmarks = np.zeros((478, 3), np.float32)
    for index, point in lm.CANONICAL_POSE_POINTS.items():
        x, y, z = turn @ np.asarray(point)
        landmarks[index, :2] = (500 + 1000 * x / (60 + z), 500 + 1000 * y / (60 + z))
    return landmarks


@pytest.mark.parametrize("yaw", [-40.0, -20.0, 0.0, 20.0, 40.0])
def test_limit_yaw_follows_a_turn_of_the_canonical_face(yaw: float) -> None:
    got = geometry.limit_yaw(project_canonical_face(yaw), (1000, 1000))
    assert np.sign(got) == np.sign(yaw)
    if yaw == 0.0:
        assert abs(got) < 2.0
    else:  # each estimate reads the canonical face's deep nose as at least the turn
        assert abs(yaw) - 3.0 < abs(got) < 1.8 * abs(yaw)


def test_limit_yaw_is_not_decided_by_one_estimate() -> None:
    """A frontal face whose chin and mouth corners sit off the nose's line (c25, close to the
    camera): the generic six-point head reads a turn, the other two estimates do not."""
    landmarks = project_canonical_face(0.0)
    landmarks[[152, 61, 291], 0] -= 25.0
    assert abs(geometry.generic_head_yaw(landmarks, (1000, 1000))) > 20.0
    assert abs(geometry.outline_yaw(landmarks)) < 1.0
    assert abs(geometry.limit_yaw(landmarks, (1000, 1000))) < 10.0


def test_limit_yaw_of_landmarks_that_are_not_finite_is_nan() -> None:
    landmarks = project_canonical_face(0.0)
    landmarks[:] = np.nan
    assert np.isnan(geometry.generic_head_yaw(landmarks, (1000, 1000)))
    assert np.isnan(geometry.limit_yaw(landmarks, (1000, 1000)))
    assert np.isnan(geometry.generic_head_yaw(np.zeros((478, 3)), (1000, 1000)))
