"""The one error tree of heygemd.

HeygemError
 +-- InputRejected      the user must fix something (stable ``code`` + plain-words ``message``)
 |    +-- MediaError    a file cannot be read or decoded (FFmpeg's own words go to the log)
 +-- ProcessingError    engine / encoder / IO trouble on good input; may be retried
 +-- ResourceError      GPU out of memory, disk full: the machine, not the input
 +-- ConfigError        a bad setting; stops start-up with one line naming the key

JobInterrupted is a BaseException (like KeyboardInterrupt) so that ``except Exception`` in a
stage can never swallow a shutdown.
"""

from __future__ import annotations

# Appended to every "cannot be read / incomplete / empty" refusal: a copy that paused longer
# than the settle time is the usual cause. The user's words only; the settings behind it go to
# the log (COPY_HINT), for the operator.
COPY_ADVICE = (
    " If the file was still being copied, copy it again. If copies into the folder are slow "
    "(a network share), ask the operator to make heygemd wait longer before taking a job, or "
    "to make it wait for a file named READY: then add an empty file named READY to the job "
    "folder once the copy is complete."
)
# Logged beside a refusal that carries COPY_ADVICE: what the operator can change.
COPY_HINT = (
    "if files arrive by a slow copy: watch.require_ready_marker = true, or a longer "
    "watch.settle_seconds"
)


class HeygemError(Exception):
    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InputRejected(HeygemError):
    """Bad input the user can fix. ``code`` is stable (it appears in report.json)."""

    code = "input_rejected"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        value: float | str | None = None,
        limit: float | str | None = None,
        frame_index: int | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.value = value
        self.limit = limit
        self.frame_index = frame_index


class MediaError(InputRejected):
    """A file is unreadable, truncated, empty, or not what its extension says. The message is
    the user's: no setting names, FFmpeg words, paths or error numbers (those are logged)."""

    code = "unreadable_media"


class ProcessingError(HeygemError):
    code = "processing_error"


class ResourceError(HeygemError):
    code = "resource_error"


class ConfigError(HeygemError):
    code = "config_error"


class JobInterrupted(BaseException):  # noqa: N818 - a control-flow signal, not an error
    """Raised from a progress callback when the daemon must abandon the running job now."""


class MachineFault(ResourceError):
    """A video could not be made because of the machine, not its input: a place it reads or
    writes is full, read-only, forbidden or not answering. The job goes back to the queue and
    runs again once that is fixed; it never fails for it."""

    code = "machine_fault"

    def __init__(self, message: str, *, folder: str | None = None) -> None:
        super().__init__(message)
        self.folder = folder  # where the writing failed (for the operator's words), if known


class DiskFull(MachineFault):
    """No space left (or quota reached) where results are written."""

    code = "disk_full"
