"""The engine contract (heygemd.engines.base): the registry, each engine's own options table,
what an engine is given, and the optional evaluation hooks."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from heygemd.engines.base import Engine, EngineContext, Evaluable, RenderRequest, create_engine
from heygemd.errors import ConfigError
from heygemd.media import hardware
from heygemd.media.probe import probe
from heygemd.settings import Settings, load_settings
from tests.fakes import EchoEngine, EchoOptions
from tests.mediagen import make_video

ECHO = '[engine]\nname = "tests.fakes:EchoEngine"\ndevice = "cpu"\n'


def settings_from(tmp_path: Path, text: str) -> Settings:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    return load_settings(cfg)


def echo_from(settings: Settings) -> EchoEngine:
    engine = create_engine(settings.engine, settings.faces, settings.paths, "cpu")
    assert isinstance(engine, EchoEngine)
    return engine


def test_a_custom_engine_gets_its_own_table_validated(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, ECHO + "[engine.echo]\nbar_fraction = 0.25\n")
    engine = echo_from(settings)
    assert isinstance(engine, Engine)
    assert engine.ctx.options == EchoOptions(bar_fraction=0.25)
    assert engine.device == "cpu"
    # and the option shapes what it renders: a bar a quarter of the frame high
    video = make_video(tmp_path / "t.mp4", width=64, height=48, seconds=0.4)
    audio = np.full(8000, 0.5, np.float32)
    request = RenderRequest(template=video, info=probe(video), audio=audio, fps=25.0)
    frame = next(iter(engine.render(request, lambda f: None).frames))
    bar = frame[:, :, 0] == 255
    assert bar[-12:].all() and not bar[:-12].all(axis=1).any()


def test_a_custom_engine_without_a_table_gets_its_defaults(tmp_path: Path) -> None:
    engine = echo_from(settings_from(tmp_path, ECHO))
    assert engine.ctx.options == EchoOptions()


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("[engine.echo]\nbar_fractoin = 0.2\n", "engine.echo.bar_fractoin"),
        ("[engine.echo]\nbar_fraction = 2\n", "engine.echo.bar_fraction"),
    ],
)
def test_a_bad_key_in_a_custom_table_is_one_line_naming_it(
    tmp_path: Path, table: str, key: str
) -> None:
    settings = settings_from(tmp_path, ECHO + table)  # kept as given until the engine is made
    with pytest.raises(ConfigError) as info:
        echo_from(settings)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"config error: {key}:")


def test_a_custom_table_from_the_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEYGEMD_ENGINE__ECHO__BAR_FRACTION", "0.5")
    assert echo_from(settings_from(tmp_path, ECHO)).ctx.options.bar_fraction == 0.5
    monkeypatch.setenv("HEYGEMD_ENGINE__ECHO__BAR_FRACTION", "3")
    with pytest.raises(ConfigError, match="from environment HEYGEMD_ENGINE__ECHO__BAR_FRACTION"):
        echo_from(settings_from(tmp_path, ECHO))


def test_a_class_that_is_no_engine_is_refused_naming_engine_name(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, '[engine]\nname = "tests.fakes:EchoOptions"\n')
    with pytest.raises(ConfigError, match="engine.name: 'tests.fakes:EchoOptions' is not an "):
        echo_from(settings)


def test_an_engine_is_given_no_daemon_folders(tmp_path: Path) -> None:
    names = {f.name for f in dataclasses.fields(EngineContext)}
    assert names == {"options", "faces", "models", "cache", "cache_max_bytes", "device"}
    settings = settings_from(tmp_path, ECHO + "[paths]\ncache_max_gb = 0.5\n")
    ctx = echo_from(settings).ctx
    assert (ctx.models, ctx.cache) == (tmp_path / "models", tmp_path / ".heygemd/cache")
    assert ctx.cache_max_bytes == 512 * 1024**2


def test_eval_refuses_an_engine_without_its_hooks_in_one_line(tmp_path: Path) -> None:
    from heygemd import evaluate

    settings = settings_from(tmp_path, ECHO)
    assert not isinstance(echo_from(settings), Evaluable)
    with pytest.raises(ConfigError) as info:
        evaluate.run(settings, [], [], tmp_path / "out")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("config error: engine.name: 'tests.fakes:EchoEngine' cannot be evaluated")


def test_auto_device_on_a_machine_without_a_gpu_leaves_torch_unimported() -> None:
    """'auto' looks for a GPU's device node first: without one torch is not loaded at
    start-up, so the hearing worker boots beside this process's own imports."""
    code = ("import sys; from heygemd.media import hardware;"
            "hardware.gpu_node_present = lambda *a, **k: False;"
            "from heygemd.engines.base import resolve_device;"
            "print(resolve_device('auto'), resolve_device('cuda'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2]).stdout.split()
    assert out == ["cpu", "cuda", "False"]


@pytest.mark.parametrize(("nodes", "any_gpu", "nvidia"), [
    ([], False, False),
    (["dev/nvidia0"], True, True),
    (["proc/driver/nvidia/version"], True, True),
    (["dev/dxg"], True, True),  # WSL2
    (["dev/kfd"], True, False),  # AMD ROCm
    (["dev/nvhost-ctrl-gpu"], True, False),  # Jetson
    (["dev/nvidiactl", "dev/null"], False, False),  # the control node alone is no card
])
def test_a_gpu_is_looked_for_by_its_device_nodes(
    tmp_path: Path, nodes: list[str], any_gpu: bool, nvidia: bool
) -> None:
    for node in nodes:
        (tmp_path / node).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / node).touch()
    assert hardware.gpu_node_present(tmp_path) is any_gpu
    assert hardware.gpu_node_present(tmp_path, nvidia_only=True) is nvidia
