"""`heygemd doctor`: one line per check, OK or what to do. Checks never change anything."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from heygemd.daemon.intake import same_filesystem
from heygemd.daemon.lock import holder
from heygemd.daemon.watcher import choose_mode, is_network_fs, read_mount
from heygemd.engines.base import resolve_device
from heygemd.errors import HeygemError
from heygemd.settings import Settings

GIB = 1024**3


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str  # what was found, or what to do


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_dirs(settings: Settings) -> Check:
    p = settings.paths
    wanted = [p.inbox, p.outbox, p.work, p.state] + ([p.log_file.parent] if p.log_file else [])
    bad = []
    for folder in wanted:
        target = folder if folder.exists() else _nearest_existing(folder)
        if not (target.is_dir() and os.access(target, os.W_OK | os.X_OK)):
            bad.append(str(folder))
    if bad:
        return Check("dirs", False, f"not writable by this user: {', '.join(bad)} "
                     "(create them and chown them to the service user)")
    missing = [str(f) for f in wanted if not f.exists()]
    note = f" ({', '.join(missing)} will be created)" if missing else ""
    return Check("dirs", True, "inbox, outbox, work, state and log folders are writable" + note)


def check_daemon(settings: Settings) -> Check:
    """Informational, OK either way: whether a daemon holds the state directory's lock."""
    state = settings.paths.state
    try:
        pid = holder(state)
    except OSError as err:  # e.g. a state folder this user may not read
        return Check("daemon", True, f"cannot tell whether a daemon is running on {state} "
                     f"({err.strerror or err})")
    if pid is None:
        return Check("daemon", True, f"no daemon is running on this state directory ({state})")
    who = f"pid {pid}" if pid else "pid unknown"
    return Check("daemon", True, f"a daemon is running ({who}) on this state directory ({state})")


def check_same_fs(settings: Settings) -> Check:
    inbox, work = settings.paths.inbox, _nearest_existing(settings.paths.work)
    if not inbox.is_dir():
        return Check("same filesystem", False, f"the inbox {inbox} does not exist; create it")
    if not same_filesystem(inbox, work):
        return Check("same filesystem", False, f"paths.work ({settings.paths.work}) must be on "
                     f"the inbox's filesystem ({inbox}) so claiming a job is an atomic rename")
    return Check("same filesystem", True, "inbox and work area share a filesystem")


def check_disk(settings: Settings) -> Check:
    need = settings.daemon.min_free_gb
    free = {str(p): shutil.disk_usage(_nearest_existing(p)).free / GIB
            for p in (settings.paths.work, settings.paths.outbox)}
    low = [f"{p} ({gb:.1f} GB)" for p, gb in free.items() if gb < need]
    if low:
        return Check("free disk", False, f"below daemon.min_free_gb={need:g} GB on "
                     f"{', '.join(low)}: free some space")
    return Check("free disk", True, ", ".join(f"{p}: {gb:.1f} GB free" for p, gb in free.items()))


def _amount(size: float) -> str:
    """Bytes in plain words, one decimal: MB below a GB, else GB."""
    return f"{size / 1024**2:.1f} MB" if size < GIB else f"{size / GIB:.1f} GB"


def check_cache(settings: Settings) -> Check:
    """Informational, OK either way: the cache folder's size against paths.cache_max_gb."""
    from heygemd.cache import cache_size

    p = settings.paths
    size, limit = cache_size(p.cache), p.cache_max_bytes()
    limit_words = f"{p.cache_max_gb:g} GB (paths.cache_max_gb)"
    used = f"{_amount(size)} of {limit_words} used" if size else f"empty, at most {limit_words}"
    detail = (f"{used} in {p.cache}: template analyses and faces found, the least recently "
              "used removed first")
    if size > limit:
        detail += ("; over the limit: the oldest are removed when the next entry is written "
                   "(or delete the folder now: it is safe)")
    return Check("cache", True, detail)


def check_network_fs(settings: Settings) -> Check:
    mount = read_mount(_nearest_existing(settings.paths.inbox))
    mode = choose_mode(settings.watch.mode, mount)
    if mount is None:
        return Check("filesystem", True, f"mount table unreadable; watching with {mode}")
    if is_network_fs(mount.fs_type) and mode == "events":
        return Check("filesystem", False, f"the inbox is on {mount.fs_type} (network): set "
                     "watch.mode = \"auto\" or \"polling\"; inotify misses remote writes")
    kind = "network" if is_network_fs(mount.fs_type) else "local"
    return Check("filesystem", True, f"inbox on {kind} {mount.fs_type} ({mount.mount_point}); "
                 f"watching with {mode}")


def check_device(settings: Settings) -> Check:
    import torch

    want = settings.engine.device
    device = resolve_device(want)  # as the daemon chooses it at start-up
    if device.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return Check("device", True, f"CUDA: {name} (engine.device={want})")
    if device.startswith("cuda"):
        return Check("device", False, f"engine.device = \"{want}\" but torch sees no GPU: check "
                     "the driver and the service user's access to /dev/nvidia*, or use \"auto\"")
    seen = "a CUDA GPU is visible" if torch.cuda.is_available() else "no CUDA GPU visible"
    return Check("device", True, f"{device.upper()} ({seen}; engine.device={want})")


def check_cores(settings: Settings) -> Check:
    """The cores this process may use and what the builtin engine spreads over them."""
    from heygemd.engines.builtin.engine import face_workers, transplant_workers, usable_cores
    from heygemd.engines.builtin.phones import phone_workers

    detail = f"{usable_cores()} usable"
    if settings.engine.name == "builtin":
        decoders = phone_workers(usable_cores())
        detail += (f"; a large template's faces found in up to {face_workers()} segment(s) "
                   f"at once, batches transplanted by {transplant_workers()} thread(s), "
                   f"a long track's phones decoded "
                   + (f"by {decoders} processes at once" if decoders else "piece after piece"))
    return Check("cores", True, detail)


def check_engine(settings: Settings) -> Check:
    from heygemd.engines.base import create_engine

    problems = create_engine(settings.engine, settings.faces, settings.paths, "cpu").problems()
    if problems:
        return Check("engine", False, f"{settings.engine.name}: " + "; ".join(problems))
    return Check("engine", True, f"{settings.engine.name}: ready")


def check_face_models(settings: Settings) -> Check:
    from heygemd.faces.analyze import FaceAnalyzer

    analyzer = FaceAnalyzer(settings.faces)
    analyzer.close()
    return Check("face models", True, "mediapipe face detector and mesh load")


def check_farm(settings: Settings) -> Check:
    """[farm] broker: it answers, this machine's paths.work is the intake's share (its mark is
    the one the intake gave the broker: the same files seen from both sides), and writable."""
    farm = settings.farm
    if not farm.broker:
        return Check("farm", True, "off (single machine; [farm] broker is empty)")
    from heygemd.farm.app import announced_share, broker_reachable, make_app
    from heygemd.farm.intake import safe_url
    from heygemd.farm.share import SHARE_MARK, share_id

    app = make_app(farm)
    try:
        why = broker_reachable(app)
        announced = announced_share(app, farm.queue) if why is None else None
    except Exception as err:  # kombu/redis raise their own
        why, announced = f"{type(err).__name__}: {err}", None
    finally:
        app.close()
    where = safe_url(farm.broker)
    if why is not None:
        return Check("farm", False, f"the broker {where} does not answer ({why}): start Redis "
                     "there, or fix [farm] broker (address, password); docs/farm.md")
    work = settings.paths.work
    mark = share_id(work)
    if announced is not None and mark != announced:
        seen = "has no share mark" if mark is None else f"holds another share's mark ({mark[:8]})"
        return Check("farm", False, f"paths.work {work} here {seen}, not the intake's share "
                     f"(mark {announced[:8]}, file {SHARE_MARK}): mount the intake's work area "
                     "at paths.work (docs/farm.md)")
    if not os.access(work, os.W_OK | os.X_OK):
        return Check("farm", False, f"the broker {where} answers, but the work area {work} is "
                     "not writable here: mount the share at paths.work (docs/farm.md)")
    if announced is None:
        return Check("farm", True, f"the broker {where} answers; the work area {work} is "
                     "writable; no intake has announced its share yet, so it could not be "
                     "compared (run this again once `heygemd run` has started on the intake)")
    return Check("farm", True, f"the broker {where} answers; the work area {work} is the "
                 f"intake's share (mark {announced[:8]} seen from both sides) and writable")


CHECKS: tuple[Callable[[Settings], Check], ...] = (
    check_dirs, check_daemon, check_same_fs, check_disk, check_cache, check_network_fs,
    check_device, check_cores, check_engine, check_face_models, check_farm,
)


def run_checks(settings: Settings) -> list[Check]:
    """Every check; one that raises becomes a failed line naming the error."""
    results = []
    for check in CHECKS:
        name = check.__name__.removeprefix("check_").replace("_", " ")
        try:
            results.append(check(settings))
        except (HeygemError, OSError, ImportError, RuntimeError, ValueError) as err:
            results.append(Check(name, False, f"{type(err).__name__}: {err}"))
    return results
