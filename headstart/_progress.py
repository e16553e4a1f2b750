"""A tiny progress protocol: library code reports progress through it, the CLI decides how to show it."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Progress", "ProgressFactory", "null_progress"]


class Progress(Protocol):
    def update(self, n: int = 1) -> None: ...

    def set_postfix_str(self, text: str) -> None: ...

    def close(self) -> None: ...


class ProgressFactory(Protocol):
    def __call__(self, total: int | None = None, desc: str = "", unit: str = "it") -> Progress: ...


class _NullProgress:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _NullProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def null_progress(total: int | None = None, desc: str = "", unit: str = "it") -> Progress:
    """A progress bar that shows nothing (the library default)."""
    return _NullProgress()
