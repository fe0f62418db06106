"""One small registry class used for models, datasets, pruning methods, formats and engines."""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from .errors import BadInputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object mapping whose failed look-ups list the valid names.

    Examples
    --------
    >>> models = Registry("model")
    >>> @models.register("tiny")
    ... def build_tiny(): ...
    >>> models.get("tiny") is build_tiny
    True
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> T:
        return self.register(name)(obj)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            valid = ", ".join(sorted(self._items))
            raise BadInputError(f"unknown {self.kind} {name!r}; valid: {valid}") from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
