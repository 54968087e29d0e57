"""What every rule shares: building findings and saying numbers in plain words."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict, Unpack

from heygemd.report import Finding, Severity

MB = 1024 * 1024


class Facts(TypedDict, total=False):
    """The measured facts a finding may carry besides its code and message."""

    file: str | None
    value: float | str | None
    limit: float | str | None
    frame_index: int | None


def finding(severity: Severity, code: str, message: str, **facts: Unpack[Facts]) -> Finding:
    return Finding(code=code, severity=severity, message=message, **facts)


def refuse(code: str, message: str, **facts: Unpack[Facts]) -> Finding:
    return finding(Severity.REFUSE, code, message, **facts)


def warn(code: str, message: str, **facts: Unpack[Facts]) -> Finding:
    return finding(Severity.WARN, code, message, **facts)


def refusals(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is Severity.REFUSE]


def pct(share: float) -> str:
    """0.123 -> "12%"."""
    return f"{share * 100:.0f}%"


def clock(seconds: float) -> str:
    """Seconds as m:ss.s: 75.25 -> "1:15.2"."""
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
