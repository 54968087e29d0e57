"""`heygemd [--config PATH] run|once|status|validate FOLDER|doctor [--config PATH]`.

argv -> Settings -> logging -> the daemon or a one-off command. Exit status: 0 ok, 2 usage or
configuration error (one line naming the key), 1 anything else (e.g. a check failed). The global
options (:data:`GLOBAL_OPTIONS`) are accepted before and after the command; given in both places,
the one after the command wins.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from heygemd.daemon.lock import AlreadyRunning
from heygemd.errors import ConfigError, HeygemError
from heygemd.native_noise import filtered_stderr
from heygemd.settings import Settings, load_settings

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def build_pipeline(settings: Settings):  # type: ignore[no-untyped-def]  # -> Pipeline
    """The real pipeline with the configured engine (imports the heavy modules)."""
    from heygemd import allocator
    from heygemd.engines.base import create_engine, resolve_device
    from heygemd.pipeline import Pipeline

    allocator.for_frames()
    device = resolve_device(settings.engine.device)
    engine = create_engine(settings.engine, settings.faces, settings.paths, device)
    return Pipeline.from_settings(settings, engine)


def _daemon(settings: Settings):  # type: ignore[no-untyped-def]
    from heygemd.daemon.service import Daemon
    from heygemd.logs import configure_logging

    configure_logging(settings.logging, settings.paths.log_file)
    if not settings.farm.broker:
        return Daemon(settings, build_pipeline)
    from heygemd.farm.intake import Farm, farm_maker

    farm = Farm(settings)  # the intake: videos are made by `heygemd worker`s
    return Daemon(settings, lambda _settings: farm, make=farm_maker(farm), farm=farm)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """A farm worker: Celery, one video at a time, until SIGTERM (warm) / a second (cold)."""
    from heygemd.farm.worker import run_worker
    from heygemd.logs import configure_logging

    if not settings.farm.broker:
        raise ConfigError("config error: farm.broker: a worker needs the farm's broker "
                          '(e.g. broker = "redis://10.0.0.5:6379/0" under [farm])')
    if args.gpu is not None:  # before anything imports torch
        os.environ["CUDA_VISIBLE_DEVICES"] = str(args.gpu)
        settings = settings.model_copy(update={
            "engine": settings.engine.model_copy(update={"device": "cuda"})})
    configure_logging(settings.logging, None)
    with filtered_stderr():
        return run_worker(settings, build_pipeline(settings), args.gpu)


def _worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gpu", type=int, metavar="N", default=None,
                        help="the GPU this worker uses (CUDA_VISIBLE_DEVICES=N); default: "
                             "[engine] device")


def cmd_run(settings: Settings, _args: argparse.Namespace) -> int:
    with filtered_stderr():
        return int(_daemon(settings).run())


def cmd_once(settings: Settings, _args: argparse.Namespace) -> int:
    with filtered_stderr():
        daemon = _daemon(settings)
        status = int(daemon.run_once())
    if daemon.unfinished:
        print(f"heygemd once: {daemon.unfinished}", file=sys.stderr)
    return status


def cmd_status(settings: Settings, _args: argparse.Namespace) -> int:
    """The running daemon's own snapshot (status.json: its problems included) when there is
    one, else the store's; either way with the inbox as it looks now."""
    import sqlite3

    from heygemd.daemon import inbox, lock
    from heygemd.daemon.status import STATUS_JSON, inbox_words, read_view, status_text

    _quiet_logging(settings)
    pid = lock.holder(settings.paths.state)
    waiting = [
        f"{name}: {inbox_words(snap, age, settings.watch)}"
        for name, snap, age in inbox.waiting_folders(settings.paths.inbox)
    ]
    try:
        view = read_view(settings.paths.state, settings.paths.state / STATUS_JSON,
                         settings.status_file().with_name(STATUS_JSON))
    except sqlite3.Error as err:
        print(f"heygemd status: the job database cannot be read ({err})", file=sys.stderr)
        return EXIT_FAIL
    view = dataclasses.replace(view, daemon_pid=pid, inbox=waiting, stopped=pid is None,
                               loose=inbox.loose_entries(settings.paths.inbox))
    print(status_text(view), end="")
    return EXIT_OK


def _quiet_logging(settings: Settings) -> None:
    """One-off commands print their own text on stdout; warnings go to stderr."""
    from heygemd.logs import configure_logging

    configure_logging(settings.logging.model_copy(update={"stdout": False, "level": "warning"}),
                      None)


def cmd_validate(settings: Settings, args: argparse.Namespace) -> int:
    from heygemd.validation.dryrun import validate_folder

    _quiet_logging(settings)
    folder = Path(args.folder)
    if not folder.is_dir():
        raise ConfigError(f"usage error: {folder} is not a folder")
    with filtered_stderr():
        text, ok = validate_folder(folder, settings)
    print(text, end="" if text.endswith("\n") else "\n")
    return EXIT_OK if ok else EXIT_FAIL


def cmd_doctor(settings: Settings, _args: argparse.Namespace) -> int:
    from heygemd.doctor import run_checks

    _quiet_logging(settings)
    with filtered_stderr():
        results = run_checks(settings)
    for check in results:
        print(f"{'OK ' if check.ok else 'FIX'}  {check.name}: {check.detail}")
    return EXIT_OK if all(c.ok for c in results) else EXIT_FAIL


def cmd_web(settings: Settings, _args: argparse.Namespace) -> int:
    """The read-only page, /api/status and /metrics, until SIGTERM/SIGINT (uvicorn's own)."""
    import uvicorn

    from heygemd.logs import configure_logging
    from heygemd.web.app import create_app, split_listen

    configure_logging(settings.logging, None)
    app = create_app(settings)  # ConfigError (exit 2) before listening when access is unsafe
    host, port = split_listen(settings.web.listen)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                server_header=False, proxy_headers=False)
    return EXIT_OK


def cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    from heygemd.evaluate import run_cli

    with filtered_stderr():
        text, met = run_cli(settings, args)
    print(text)
    return EXIT_OK if met else EXIT_FAIL


def _eval_arguments(parser: argparse.ArgumentParser) -> None:
    from heygemd.evaluate import add_cli_arguments

    add_cli_arguments(parser)


@dataclass(frozen=True)
class Command:
    help: str
    handler: Callable[[Settings, argparse.Namespace], int]
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None


def _folder_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="a job folder (audio + videos)")


# Extend here: name -> Command. Handlers import what they need lazily.
COMMANDS: dict[str, Command] = {
    "run": Command("run the service in the foreground (systemd runs this)", cmd_run),
    "once": Command("process every ready job in the inbox, then exit", cmd_once),
    "status": Command("queue, running job with progress, last results", cmd_status),
    "validate": Command("dry run: what in FOLDER would be accepted or refused, and why",
                        cmd_validate, _folder_argument),
    "doctor": Command("check the installation: one line per check, OK or what to do", cmd_doctor),
    "worker": Command("a farm worker: make videos sent by the intake ([farm] broker)",
                      cmd_worker, _worker_arguments),
    "web": Command("serve the read-only status page, /api/status and /metrics ([web] listen)",
                   cmd_web),
    "eval": Command("measure lip-sync quality on real talking clips (self-reenactment, dubbing)",
                    cmd_eval, _eval_arguments),
}


@dataclass(frozen=True)
class GlobalOption:
    """An option every command takes, before or after the command's name."""

    flag: str
    metavar: str
    help: str
    type: Callable[[str], object]
    default: object = None


# Extend here: each is accepted on both sides of the command (`heygemd --config F once` and
# `heygemd once --config F`).
GLOBAL_OPTIONS: tuple[GlobalOption, ...] = (
    GlobalOption("--config", "PATH", "config.toml (default: $HEYGEMD_CONFIG, else ./config.toml)",
                 Path),
)

_WHERE = {False: "; also accepted after the command, where it wins over one given before it",
          True: "; also accepted before the command; given in both places, this one wins"}


def _add_global_options(parser: argparse.ArgumentParser, *, after_command: bool) -> None:
    """The global options on ``parser``. After the command they have no default of their own
    (argparse.SUPPRESS), so a value given before the command is kept unless repeated there."""
    for option in GLOBAL_OPTIONS:
        parser.add_argument(
            option.flag, type=option.type, metavar=option.metavar,
            default=argparse.SUPPRESS if after_command else option.default,
            help=option.help + _WHERE[after_command],
        )


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="heygemd", description=__doc__.splitlines()[0])
    _add_global_options(parser, after_command=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        child = sub.add_parser(name, help=command.help, description=command.help)
        _add_global_options(child, after_command=True)
        if command.add_arguments is not None:
            command.add_arguments(child)
    return parser


def _config_path(given: Path | None) -> Path | None:
    if given is not None:
        return given
    env = os.environ.get("HEYGEMD_CONFIG")
    if env:
        return Path(env)
    default = Path("config.toml")
    return default if default.is_file() else None


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        settings = load_settings(_config_path(args.config))
        return COMMANDS[args.command].handler(settings, args)
    except ConfigError as err:
        print(f"heygemd: {err.message}", file=sys.stderr)
        return EXIT_USAGE
    except AlreadyRunning as err:
        print(err.message, file=sys.stderr)
        return EXIT_FAIL
    except HeygemError as err:
        print(f"heygemd: {err.code}: {err.message}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        return EXIT_FAIL
    except OSError as err:
        print(f"heygemd: {err}", file=sys.stderr)
        return EXIT_FAIL


def entry() -> int:
    """The process's entry point (the ``heygemd`` script, ``python -m heygemd``): :func:`main`,
    then every object still alive is frozen (gc.freeze), so the interpreter's exit does not walk
    the libraries' hundreds of thousands of objects again in its last collections (a `heygemd
    once` of th08 ended 0.5-0.7 s after its work, 0.2 s frozen). A cycle frozen so is never
    collected and its ``__del__`` never runs: every command closes what it opened before
    :func:`main` returns (the daemon's shutdown: store, pipeline, engine, hearing worker; logging
    closes at exit; temporary folders and frame streams end through weakref.finalize, which
    runs at exit whatever is frozen)."""
    status = main()
    gc.freeze()
    return status
