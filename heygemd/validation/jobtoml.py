"""A job folder's optional ``job.toml``: per-job overrides of the ``[output]`` settings.

Shared by the daemon (heygemd.daemon.making) and the dry run (heygemd.validation.dryrun), so
``validate`` never accepts a job.toml the daemon would refuse. Pure: bytes in, Settings or plain
words out.
"""

from __future__ import annotations

import tomllib
from typing import Any, Literal, get_args, get_origin

import annotated_types
from pydantic import ValidationError

from heygemd.settings import OutputSettings, Settings


def job_settings(settings: Settings, job_toml: bytes) -> Settings:
    """Settings for one job: ``job.toml`` may override keys of its ``[output]`` table only.

    Raises ValueError with a plain-words message naming the bad key.
    """
    try:
        data = tomllib.loads(job_toml.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"job.toml cannot be read: {err}. Fix or remove it.") from None
    extra = sorted(set(data) - {"output"})
    if extra:
        raise ValueError(f"job.toml may only hold an [output] table, not {', '.join(extra)}.")
    table = data.get("output", {})
    if not isinstance(table, dict):
        raise ValueError("job.toml: output must be a table ([output] with keys under it). "
                         "Fix or remove it.")
    try:
        output = OutputSettings(**{**settings.output.model_dump(), **table})
    except ValidationError as err:
        raise ValueError(output_error_words(err.errors()[0])) from None
    return settings.model_copy(update={"output": output})


def _expected(key: str) -> tuple[str, str]:
    """What an ``[output]`` key takes, in plain words: ('a whole number', '0-51') or
    ('one of', 'fast, medium, ...') (pure)."""
    field = OutputSettings.model_fields[key]
    if get_origin(field.annotation) is Literal:
        return "one of", ", ".join(str(c) for c in get_args(field.annotation))
    low = next((m.ge for m in field.metadata if isinstance(m, annotated_types.Ge)), None)
    high = next((m.le for m in field.metadata if isinstance(m, annotated_types.Le)), None)
    kind = "a whole number" if field.annotation is int else "a number"
    if low is not None and high is not None:
        return kind, f"{low}-{high}"
    return kind, f"at least {low}" if low is not None else ""


def output_error_words(error: Any) -> str:
    """One pydantic error of job.toml's ``[output]`` as plain words naming the key, the value
    and what is expected: "job.toml: output.crf = 'high' is not a whole number (expected
    0-51). Fix or remove it." (pure)."""
    key = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden" or key not in OutputSettings.model_fields:
        allowed = ", ".join(OutputSettings.model_fields)
        return (f"job.toml: output.{key} is not a setting (allowed: {allowed}). "
                "Fix or remove it.")
    kind, allowed = _expected(key)
    if kind == "one of":
        problem, expected = "is not allowed", f"one of: {allowed}"
    elif error["type"].startswith(("int_", "float_")):
        problem, expected = f"is not {kind}", allowed or kind
    else:
        joiner = " of " if allowed.startswith("at least") else " "
        problem, expected = "is out of range", f"{kind}{joiner}{allowed}".strip()
    return (f"job.toml: output.{key} = {error.get('input')!r} {problem} (expected {expected}). "
            "Fix or remove it.")
