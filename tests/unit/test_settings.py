"""config.toml documents every setting with its default; bad values name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from heygemd.errors import ConfigError
from heygemd.settings import BuiltinEngineSettings, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_config_toml_lists_every_setting_with_its_default():
    documented = _flatten(tomllib.loads((ROOT / "config.toml").read_text()))
    defaults = _flatten(Settings().model_dump(mode="json"))
    # status_file's default (None) is derived and documented as a comment
    defaults = {k: v for k, v in defaults.items() if v is not None}
    assert set(documented) == set(defaults)
    for key, value in defaults.items():
        assert documented[key] == value, key


def test_relative_paths_are_anchored_at_the_config_file(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[paths]\ninbox = "in"\n')
    s = load_settings(cfg)
    assert s.paths.inbox == tmp_path / "in"
    assert s.paths.outbox == tmp_path / "outbox"


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[watch]\nsettle_seconds = 4\n")
    monkeypatch.setenv("HEYGEMD_WATCH__SETTLE_SECONDS", "2.5")
    assert load_settings(cfg).watch.settle_seconds == 2.5


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[watch]\nsettle_seconds = -1\n", "watch.settle_seconds"),
        ('[watch]\nmode = "sometimes"\n', "watch.mode"),
        ("[watch]\nsetle_seconds = 3\n", "watch.setle_seconds"),
        ("[output]\ncrf = 99\n", "output.crf"),
        ("[paths]\ncache_max_gb = 0\n", "paths.cache_max_gb"),
        ('[engine]\ndevcie = "cpu"\n', "engine.devcie"),
        ("[engine.builtin]\nlead_mss = 20\n", "engine.builtin.lead_mss"),
        ('[engine.wav2lip]\ncolour_match = "hsv"\n', "engine.wav2lip.colour_match"),
    ],
)
def test_bad_value_is_one_line_naming_the_key(tmp_path, text, key):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    msg = str(info.value)
    assert "\n" not in msg
    assert key in msg


def test_malformed_toml_is_a_config_error(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[watch\n")
    with pytest.raises(ConfigError):
        load_settings(cfg)


def test_the_cache_limit_defaults_to_4_gb_and_is_not_a_path(tmp_path):
    assert Settings().paths.cache_max_bytes() == 4 * 1024**3
    cfg = tmp_path / "c.toml"
    cfg.write_text("[paths]\ncache_max_gb = 0.5\n")
    paths = load_settings(cfg).paths
    assert paths.cache_max_gb == 0.5 and paths.cache_max_bytes() == 512 * 1024**2
    assert paths.cache == tmp_path / ".heygemd/cache"


def test_another_engine_table_is_kept_as_given_beside_the_typed_ones(tmp_path, monkeypatch):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[engine]\nname = "pkg.mod:Mine"\n[engine.mine]\nstrength = 2\n')
    monkeypatch.setenv("HEYGEMD_ENGINE__MINE__STYLE", "calm")
    engine = load_settings(cfg).engine
    assert engine.model_extra == {"mine": {"strength": 2, "style": "calm"}}
    dumped = engine.model_dump(mode="json")
    assert dumped["mine"] == {"strength": 2, "style": "calm"}
    assert dumped["builtin"] == BuiltinEngineSettings().model_dump(mode="json")


def test_a_shipped_table_validates_as_its_engine_options():
    engine = Settings().engine
    assert engine.options("builtin", BuiltinEngineSettings) == engine.builtin
    with pytest.raises(ConfigError, match="^config error: engine.wav2lip.checkpoint: unknown"):
        engine.options("wav2lip", BuiltinEngineSettings)
