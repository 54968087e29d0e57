"""The daemon's intake: from a folder appearing in the inbox to a queued job that may run.

``Intake`` owns the inbox side of the loop: whether the inbox is there at all (an unmounted
share is never read as "no jobs"), noticing job folders (watcher events plus periodic rescans),
waiting until each is ready, claiming it atomically into the work area and queueing it in the
store, and then watching for a copy that goes on after the claim. The rules it applies live in
:mod:`heygemd.daemon.inbox`; this is the state kept between ticks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import structlog

from heygemd.daemon import inbox
from heygemd.daemon.jobs import JobPaths
from heygemd.daemon.status import not_ready_words
from heygemd.daemon.store import JobRow, JobStore
from heygemd.daemon.watcher import Watcher
from heygemd.settings import Settings
from heygemd.validation import jobfiles

log = structlog.get_logger(__name__)

# After the claim, nothing in the job may change for min(settle_seconds, this) before it is
# published: a writer that paused longer than settle_seconds and goes on writing is waited for.
# The job runs meanwhile (JobRunner.run waits out what is left of the window before publishing).
CLAIM_SETTLE_SECONDS = 5.0


def same_filesystem(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are on one filesystem (a rename between them is atomic)."""
    return os.stat(a).st_dev == os.stat(b).st_dev


class Settled(NamedTuple):
    """A queued job that may run now. ``quiet_until`` (monotonic seconds): the end of its claim
    settle window; the run publishes nothing before then, nor if the folder changed meanwhile."""

    row: JobRow
    quiet_until: float


class Waiting(NamedTuple):
    """Inbox folders seen but not yet claimed, by name: ``settling`` ones look complete and
    wait for their files to stop changing; ``incomplete`` ones read "name: what to do".
    ``loose``: entries in the inbox itself that are not folders (left alone). ``blocked``: ready
    folders the service could not move out of the inbox, "name: what to do"."""

    settling: list[str]
    incomplete: list[str]
    loose: list[str]
    blocked: list[str]


def claim_failure_words(err: OSError, source: Path) -> str:
    """What to do about the ready folder ``source`` that could not be moved out of the inbox
    (pure). Only a refusal about the folder itself is the folder's to fix; one about the work
    area (its job folder could not be made) is the service's."""
    if isinstance(err, PermissionError) and err.filename == str(source):
        return ("the service may not move it out of the inbox (permission denied): make the "
                "folder and everything in it writable by the service's user or group; it is "
                "taken as soon as it is")
    return f"it could not be moved out of the inbox ({err.strerror or err}); it is tried again"


class Intake:
    """Inbox folders -> claimed, queued jobs. Driven by the daemon's loop, one call a tick.

    ``problems`` is the daemon's shared kind -> plain-words dict shown in the status; the intake
    sets and clears its ``"inbox"`` entry. ``on_change`` is called whenever what users see
    changed at once (a job claimed, a claimed job found still being copied).
    """

    def __init__(
        self, settings: Settings, store: JobStore, watcher: Watcher, problems: dict[str, str],
        on_change: Callable[[], None],
    ) -> None:
        self.settings = settings
        self._store = store
        self._watcher = watcher
        self._problems = problems
        self._on_change = on_change
        self._candidates: dict[str, inbox.Readiness] = {}
        self._claimed: dict[str, inbox.Readiness] = {}  # job id -> stability since the claim
        self._copying: set[str] = set()  # job ids whose files changed after the claim
        self._loose: set[str] = set()  # loose files / links in the inbox (logged once each)
        self._blocked: dict[str, str] = {}  # ready folders the claim failed on -> what to do
        self._last_rescan = float("-inf")

    # -- what the daemon asks ----------------------------------------------------------------

    @property
    def candidates(self) -> tuple[str, ...]:
        """Names of the inbox folders seen but not yet claimed."""
        return tuple(self._candidates)

    @property
    def copying(self) -> tuple[str, ...]:
        """Ids of queued jobs whose files changed after the claim (waited for)."""
        return tuple(self._copying)

    def waiting(self) -> Waiting:
        """The unclaimed folders as the status shows them, sorted by name."""
        settling, incomplete, blocked = [], [], []
        for name, readiness in sorted(self._candidates.items()):
            words = not_ready_words(readiness.snapshot)
            if name in self._blocked:
                blocked.append(f"{name}: {self._blocked[name]}")
            elif words is None:
                settling.append(name)
            else:
                incomplete.append(f"{name}: {words}")
        return Waiting(settling, incomplete, sorted(self._loose), blocked)

    def request_rescan(self) -> None:
        """List the whole inbox at the next ``discover`` instead of waiting for the rescan
        interval (or a watcher event)."""
        self._last_rescan = float("-inf")

    # -- noticing and claiming ---------------------------------------------------------------

    def available(self) -> bool:
        """The inbox exists and is on the work filesystem (an unmounted share shows up as an
        empty directory on another filesystem: never read that as 'no jobs'). Keeps the
        watcher running while it is, and the ``"inbox"`` problem set while it is not."""
        paths = self.settings.paths
        try:
            ok = paths.inbox.is_dir() and same_filesystem(paths.inbox, paths.work)
        except OSError:
            ok = False
        if ok and "inbox" in self._problems:
            del self._problems["inbox"]
            log.info("inbox.available", inbox=str(paths.inbox))
            self.request_rescan()
        elif not ok and "inbox" not in self._problems:
            self._problems["inbox"] = (
                "the inbox is missing or not mounted (the service log names its path); "
                "retrying")
            log.error("inbox.unavailable", inbox=str(paths.inbox))
            self._watcher.stop()
        if ok and not self._watcher.is_alive:
            try:
                self._watcher.start()
            except OSError as err:
                log.error("watcher.start_failed", error=str(err))
        return ok

    def discover(self, now: float, claim: bool = True) -> None:
        """Take in new folder names (watcher events, and a full listing every
        ``watch.rescan_seconds``), look at every candidate, oldest first, and claim the ready
        ones (``claim``; else only look: their settling starts). ``now``: monotonic seconds."""
        if not self.available():
            return
        names = self._watcher.drain()
        if now - self._last_rescan >= self.settings.watch.rescan_seconds:
            self._last_rescan = now
            try:
                listing = set(os.listdir(self.settings.paths.inbox))
            except OSError as err:
                log.error("inbox.rescan_failed", error=str(err))
            else:
                names |= listing
                self._loose &= listing  # removed without an event reaching us
        for name in names:
            if name not in self._candidates and self._is_job_folder(name):
                try:
                    ctime = os.stat(self.settings.paths.inbox / name).st_ctime_ns
                except OSError:
                    continue  # gone again
                self._candidates[name] = inbox.Readiness(first_seen=now, order=ctime)
        order = sorted(self._candidates.items(), key=lambda kv: kv[1].sort_key)
        for name, readiness in order:
            self._observe(name, readiness, now, claim)

    def _is_job_folder(self, name: str) -> bool:
        """Whether ``name`` is a folder in the inbox; keeps the loose entries up to date."""
        path = self.settings.paths.inbox / name
        if inbox.is_loose(path):
            if name not in self._loose:
                self._loose.add(name)
                log.warning("inbox.not_a_job_folder", name=name,
                            hint="put a folder (audio + videos) in the inbox; this is left alone")
            return False
        self._loose.discard(name)  # gone, or replaced by a folder
        return not jobfiles.is_ignored(name) and os.path.lexists(path)

    def _observe(self, name: str, readiness: inbox.Readiness, now: float, claim: bool) -> None:
        watch = self.settings.watch
        source = self.settings.paths.inbox / name
        try:
            readiness.observe(inbox.scan_entries(source), now)
        except OSError:
            del self._candidates[name]  # renamed or removed by its owner
            self._blocked.pop(name, None)
            return
        marker = watch.ready_marker if watch.require_ready_marker else None
        if not readiness.is_ready(now, watch.settle_seconds, marker):
            if self._blocked.pop(name, None) is not None:  # changed: no longer "ready"
                self._on_change()
            return
        if not claim:
            return
        job_id = inbox.new_job_id()
        try:
            target = inbox.claim(source, self.settings.paths.work, job_id)
        except OSError as err:
            self._claim_failed(name, claim_failure_words(err, source), err)
            return
        self._blocked.pop(name, None)
        self._store.add(job_id, name)
        self._settle_after_claim(job_id, target, now)
        del self._candidates[name]
        log.info("job.claimed", job_id=job_id, name=name)
        self._on_change()

    def _claim_failed(self, name: str, words: str, err: OSError) -> None:
        """Show why the ready folder ``name`` stays in the inbox (``words``: what to do). The
        claim is tried again every tick, so fixing the folder is enough; the log says it once
        per cause."""
        if self._blocked.get(name) != words:
            log.error("job.claim_failed", name=name, error=str(err), hint=words)
            self._blocked[name] = words
            self._on_change()

    # -- after the claim ---------------------------------------------------------------------

    def wait_for_copy(self, row: JobRow, now: float) -> None:
        """``row``'s files changed while it ran (the copy went on after a long pause): it runs
        again only once they have been still for the claim settle window."""
        self._settle_after_claim(row.job_id, JobPaths.of(self.settings, row).original, now)
        self._copying.add(row.job_id)
        self._on_change()

    def _settle_after_claim(self, job_id: str, folder: Path, now: float) -> None:
        """Watch the claimed ``folder`` from ``now``: next_settled waits until it is still."""
        settle = inbox.Readiness(first_seen=now)
        with contextlib.suppress(OSError):  # the runner reports a folder it cannot read
            settle.observe(inbox.scan_entries(folder), now)
        self._claimed[job_id] = settle

    def next_settled(self, queued: Iterable[JobRow], now: float) -> Settled | None:
        """The first of ``queued`` (oldest first) that may run now: one claimed and unchanged
        since runs at once, its claim settle window going on while it runs; one whose files
        changed after the claim once they have been still for that window; jobs this process
        did not claim (recovered ones) as they are. ``now``: monotonic seconds."""
        window = self._claim_window()
        rows = list(queued)
        waiting = {row.job_id for row in rows}
        for job_id, readiness in list(self._claimed.items()):  # run since, window over
            if job_id not in waiting and job_id not in self._copying \
                    and now - readiness.changed_at >= window:
                del self._claimed[job_id]
        for row in rows:
            quiet_until = self._quiet_until(row, now, window)
            if quiet_until is not None:
                return Settled(row, quiet_until)
        return None

    def _claim_window(self) -> float:
        """How long a claimed job's files must stay unchanged before it is published."""
        return 0.0 if self.settings.watch.require_ready_marker else min(
            self.settings.watch.settle_seconds, CLAIM_SETTLE_SECONDS)

    def _quiet_until(self, row: JobRow, now: float, window: float) -> float | None:
        """When ``row``'s claim settle window ends, if it may run now; else None. Its
        stillness is watched until the window has passed, also while it is handed out (a job
        held back by the disk guard, or put back by a failed run, is looked at again)."""
        readiness = self._claimed.get(row.job_id)
        if readiness is None:
            return float("-inf")
        claimed_at = readiness.changed_at
        try:
            readiness.observe(inbox.scan_entries(JobPaths.of(self.settings, row).original), now)
        except OSError:
            readiness.changed_at = now - window  # gone: let the runner report it
        if readiness.changed_at > claimed_at and row.job_id not in self._copying:
            self._copying.add(row.job_id)
            log.warning("job.still_being_copied", job_id=row.job_id, name=row.name,
                        hint="a file changed after the job was taken; waiting for the copy to "
                             "finish (watch.require_ready_marker or a longer "
                             "watch.settle_seconds avoid this)")
            self._on_change()
        if row.job_id in self._copying:
            if now - readiness.changed_at < window:
                return None
            self._copying.discard(row.job_id)
        if now - readiness.changed_at >= window:
            del self._claimed[row.job_id]
        return readiness.changed_at + window
