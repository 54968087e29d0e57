"""Shared fixtures: where the real test media live."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MEDIA = ROOT.parent / "shared" / "media"


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """../shared/media (CI has it beside the checkout), for tests needing real faces or speech."""
    if not (SHARED_MEDIA / "MANIFEST.md").is_file():
        pytest.skip(f"real test media not found at {SHARED_MEDIA}")
    return SHARED_MEDIA


@pytest.fixture(scope="session")
def talking_clips(shared_media: Path) -> list[Path]:
    return sorted((shared_media / "talking").iterdir())


@pytest.fixture(scope="session")
def speech_files(shared_media: Path) -> list[Path]:
    return sorted((shared_media / "speech").iterdir())
