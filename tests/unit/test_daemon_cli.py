"""CLI exit codes and one-line config errors; per-job job.toml overrides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from heygemd.cli import COMMANDS, GLOBAL_OPTIONS, main, make_parser
from heygemd.settings import Settings
from heygemd.validation.jobtoml import job_settings


def test_bad_config_value_is_one_line_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("[watch]\nsettle_seconds = -1\n")
    assert main(["--config", str(cfg), "status"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "watch.settle_seconds" in err


def test_missing_config_and_bad_usage_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(tmp_path / "nope.toml"), "status"]) == 2
    assert "file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2


def test_status_without_a_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[paths]\nstate = "state"\n')
    assert main(["--config", str(cfg), "status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("heygemd is NOT RUNNING") and "(none yet)" in out


def test_status_of_a_damaged_database_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[paths]\nstate = "state"\n')
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "jobs.sqlite3").write_bytes(b"not a database at all" * 100)
    assert main(["--config", str(cfg), "status"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("heygemd status: the job database cannot be read (")
    assert "Traceback" not in err


def test_status_says_whether_a_daemon_runs_and_lists_the_inbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from heygemd.daemon.lock import InstanceLock

    cfg = tmp_path / "config.toml"
    cfg.write_text('[paths]\nstate = "state"\ninbox = "inbox"\n[watch]\nsettle_seconds = 60\n')
    (tmp_path / "inbox" / "fresh").mkdir(parents=True)
    (tmp_path / "inbox" / "fresh" / "v.wav").write_bytes(b"x")
    (tmp_path / "inbox" / "old").mkdir()
    (tmp_path / "inbox" / "old" / "v.wav").write_bytes(b"x")
    os.utime(tmp_path / "inbox" / "old" / "v.wav", (1, 1))
    (tmp_path / "inbox" / "loose.wav").write_bytes(b"x")
    assert main(["--config", str(cfg), "status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("heygemd is NOT RUNNING")
    assert "In the inbox, not taken yet:" in out
    assert "  - fresh: still being copied" in out
    assert "  - old: looks ready" in out and "  - loose.wav" not in out
    assert ("Not a job folder (left alone): 'loose.wav' - put the audio and videos together "
            "in a folder") in out
    held = InstanceLock(tmp_path / "state")
    held.acquire()
    try:
        assert main(["--config", str(cfg), "status"]) == 0
        assert capsys.readouterr().out.startswith(f"heygemd is running (pid {os.getpid()})")
    finally:
        held.release()


def test_validate_refuses_a_missing_folder(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("")
    assert main(["--config", str(cfg), "validate", str(tmp_path / "missing")]) == 2


def test_every_command_is_in_the_table() -> None:
    assert set(COMMANDS) >= {"run", "once", "status", "validate", "doctor"}


def test_job_toml_overrides_output_only() -> None:
    base = Settings()
    settings = job_settings(base, b"[output]\ncrf = 28\npreset = 'fast'\n")
    assert settings.output.crf == 28 and settings.output.preset == "fast"
    assert settings.watch == base.watch and base.output.crf == 18
    with pytest.raises(ValueError, match="output.crf"):
        job_settings(base, b"[output]\ncrf = 99\n")
    with pytest.raises(ValueError, match="only hold an \\[output\\] table"):
        job_settings(base, b"[engine]\nname = 'x'\n")
    with pytest.raises(ValueError, match="cannot be read"):
        job_settings(base, b"[output\n")


def test_config_errors_use_plain_words_and_name_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("[watch]\nsetle_seconds = 3\n")
    assert main(["--config", str(cfg), "status"]) == 2
    assert capsys.readouterr().err.strip() == (
        "heygemd: config error: watch.setle_seconds: unknown setting")
    cfg.write_text("")
    monkeypatch.setenv("HEYGEMD_WATCH__SETTLE_SECONDS", "abc")
    assert main(["--config", str(cfg), "status"]) == 2
    err = capsys.readouterr().err.strip()
    assert "watch.settle_seconds" in err and "'abc'" in err
    assert err.endswith("(from environment HEYGEMD_WATCH__SETTLE_SECONDS)")


def test_validate_does_not_print_a_code_as_a_value() -> None:
    from heygemd.report import Finding, Severity
    from heygemd.validation.dryrun import format_findings

    lines = format_findings([
        Finding(code="unreadable_media", severity=Severity.REFUSE, message="Cannot be read.",
                value="unreadable_media"),
        Finding(code="low_resolution", severity=Severity.WARN, message="Small.", value=512.0,
                limit=720.0),
    ])
    assert lines[0].endswith("unreadable_media: Cannot be read.")
    assert lines[1].endswith("(value 512.0, limit 720.0)")


def _arguments_of(name: str) -> list[str]:
    """The smallest valid arguments of command ``name`` besides the global options."""
    return {"validate": ["folder"]}.get(name, [])


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_global_options_go_before_or_after_any_command(name: str) -> None:
    parser = make_parser()
    own = _arguments_of(name)
    assert parser.parse_args([name, *own]).config is None
    assert parser.parse_args(["--config", "a.toml", name, *own]).config == Path("a.toml")
    assert parser.parse_args([name, *own, "--config", "b.toml"]).config == Path("b.toml")
    assert parser.parse_args([name, "--config", "b.toml", *own]).config == Path("b.toml")
    both = parser.parse_args(["--config", "a.toml", name, "--config", "b.toml", *own])
    assert both.config == Path("b.toml")  # the one after the command wins


def test_every_global_option_is_offered_after_every_command() -> None:
    parser = make_parser()
    for name in COMMANDS:
        for option in GLOBAL_OPTIONS:
            args = parser.parse_args([name, *_arguments_of(name), option.flag, "x"])
            assert getattr(args, option.flag.lstrip("-").replace("-", "_")) == option.type("x")


def test_config_after_the_command_is_used_and_wins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text('[paths]\nstate = "state"\ninbox = "inbox"\n')
    bad.write_text("[watch]\nsettle_seconds = -1\n")
    assert main(["status", "--config", str(good)]) == 0
    assert capsys.readouterr().out.startswith("heygemd is NOT RUNNING")
    assert main(["--config", str(bad), "status", "--config", str(good)]) == 0
    capsys.readouterr()
    assert main(["--config", str(good), "status", "--config", str(bad)]) == 2
    assert "watch.settle_seconds" in capsys.readouterr().err


def test_help_says_where_the_global_options_go(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["once", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = " ".join(capsys.readouterr().out.split())
        assert "--config PATH" in text and "wins" in text


def test_the_process_entry_passes_the_status_on_and_freezes_what_is_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    from heygemd import cli

    monkeypatch.setattr(cli, "main", lambda: 3)
    gc.unfreeze()
    try:
        assert cli.entry() == 3
        assert gc.get_freeze_count() > 0  # the exit's collections skip them
    finally:
        gc.unfreeze()
