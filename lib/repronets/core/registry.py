"""Named factories: each model family (and each set of interchangeable methods) is a registry of small functions
that build one variant, looked up by the name a profile file or a run key gives (timm's and torchdiffeq's pattern:
a string names the variant, a function makes it; no if-chains over names)."""

from __future__ import annotations

from typing import Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → value table with a decorator to fill it and errors that list what exists.

    >>> MODELS = Registry("model")
    >>> @MODELS.register("mlp")
    ... def mlp(width): ...
    >>> MODELS.create("mlp", width=10)
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, value: T | None = None):
        """``REGISTRY.register("name", value)``, or ``@REGISTRY.register("name")`` above a function or class."""
        if value is not None:
            self._add(name, value)
            return value

        def decorator(v: T) -> T:
            self._add(name, v)
            return v

        return decorator

    def _add(self, name: str, value: T) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = value

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self._entries)}") from None

    def create(self, name: str, *args, **kwargs):
        """Call the factory registered as ``name``."""
        return self.get(name)(*args, **kwargs)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
