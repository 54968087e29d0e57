"""`heygemd validate FOLDER` applies the daemon's job.toml check (no media examined here)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from heygemd.settings import Settings
from heygemd.validation import dryrun
from heygemd.validation.jobtoml import job_settings


@pytest.fixture
def examined(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """Stand in for examining the media: audio and every video accepted. Records the settings
    the files would have been examined with."""
    seen: list[Settings] = []

    def fake(folder: Path, settings: Settings, audios: Sequence[str], videos: Sequence[str],
             lines: list[str]) -> tuple[bool, int]:
        seen.append(settings)
        return True, len(videos)

    monkeypatch.setattr(dryrun, "_examine", fake)
    return seen


def _job(tmp_path: Path, job_toml: str | None) -> tuple[Path, Settings]:
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "voice.wav").write_bytes(b"RIFF")
    (folder / "anna.mp4").write_bytes(b"\0" * 16)
    if job_toml is not None:
        (folder / "job.toml").write_text(job_toml)
    settings = Settings.model_validate({"paths": {"cache": str(tmp_path / "cache")}})
    return folder, settings


@pytest.mark.parametrize("text", [
    '[output]\ncrf = "high"\n',          # a bad value
    "[output]\ncrf = 20\n[engine]\n",     # a table other than [output]
    "[output]\nbitrate = 1\n",            # an unknown key
    "[output\n",                          # not TOML
])
def test_a_broken_job_toml_refuses_the_job_in_the_daemons_words(
    tmp_path: Path, examined: list[Settings], text: str
) -> None:
    folder, settings = _job(tmp_path, text)
    with pytest.raises(ValueError) as daemon:
        job_settings(settings, text.encode())
    out, accepted = dryrun.validate_folder(folder, settings)
    assert not accepted
    assert "job    job.toml: REFUSED" in out
    assert f"    refuse job_toml: {daemon.value}" in out
    assert out.rstrip().splitlines()[-1] == f"Result: REFUSED: {daemon.value}"
    assert examined  # the files are still examined, so every problem shows at once


def test_a_valid_job_toml_says_its_output_settings_will_be_applied(
    tmp_path: Path, examined: list[Settings]
) -> None:
    folder, settings = _job(tmp_path, '[output]\ncrf = 30\npreset = "fast"\n')
    out, accepted = dryrun.validate_folder(folder, settings)
    assert accepted, out
    line = next(x for x in out.splitlines() if x.startswith("job    job.toml"))
    assert "ACCEPTED: its output settings will be applied" in line
    assert "crf = 30" in line and "preset = 'fast'" in line
    assert out.rstrip().endswith("Result: ACCEPTED: 1 of 1 videos would be lip-synced.")
    assert examined[0].output.crf == 30  # examined under the job's own settings


def test_without_job_toml_nothing_is_said_about_it(
    tmp_path: Path, examined: list[Settings]
) -> None:
    folder, settings = _job(tmp_path, None)
    out, accepted = dryrun.validate_folder(folder, settings)
    assert accepted and "job.toml" not in out
