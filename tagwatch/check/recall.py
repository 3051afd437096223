"""Phase 1, recall: what the store knows about every tag and target before this check (two
queries), and each tag's history, read only when a later phase asks for it."""

from __future__ import annotations

from dataclasses import dataclass, field

from tagwatch.core.model import Stretch, TagKey, TagView, TargetView
from tagwatch.store import Store

__all__ = ["Known", "recall"]


@dataclass(slots=True)
class Known:
    """The recorded state a check starts from."""

    store: Store
    tags: dict[TagKey, TagView]
    targets: dict[str, TargetView]
    _histories: dict[TagKey, list[Stretch]] = field(default_factory=dict)

    def tag(self, key: TagKey) -> TagView | None:
        """The tag as recorded (None: never recorded)."""
        return self.tags.get(key)

    def target(self, key: str) -> TargetView:
        """The target as recorded (the default view: never checked)."""
        return self.targets.get(key, TargetView())

    def history(self, key: TagKey) -> list[Stretch]:
        """Every stretch of the tag, newest first; read once per cycle, and only for tags
        the store has."""
        if key not in self._histories:
            self._histories[key] = self.store.history(key) if key in self.tags else []
        return self._histories[key]


def recall(store: Store) -> Known:
    """Raises StoreError when the database cannot be read."""
    return Known(store, store.tag_views(), store.target_views())
