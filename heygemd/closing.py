"""A mixin for objects that hold a native resource (a decoder, mediapipe graphs)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class Closing(ABC):
    """``with obj:`` hands ``obj`` in and calls ``obj.close()`` on the way out, even on error."""

    @abstractmethod
    def close(self) -> None:
        """Release the resource; safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
