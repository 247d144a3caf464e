"""Aliases of the edge engine: one JSON file, replaced atomically, so a batch of operations is all or nothing.

qdrant_edge has no aliases. Qdrant applies ``update_collection_aliases`` as one change: either every
operation of the request takes effect or none does. Here the operations are applied to a copy, checked
as Qdrant checks them, and the copy is written to a temporary file, fsynced, renamed over
``aliases.json`` and the folder fsynced: a reader (or a process restarted after a crash) sees the old
file or the new one, never a mix.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from qdrant_client import models

from clicktune.adapters.durable import write_atomically

FILE_NAME = "aliases.json"


class AliasFile:
    """``alias -> collection`` kept in memory and in ``<root>/aliases.json``; callers hold the engine's lock."""

    def __init__(self, root: Path) -> None:
        self.path = root / FILE_NAME
        self.aliases: dict[str, str] = {}
        if self.path.exists():
            self.aliases = dict(json.loads(self.path.read_text(encoding="utf-8")))

    def _save(self, aliases: dict[str, str]) -> None:
        write_atomically(self.path, json.dumps(aliases, indent=1, sort_keys=True))
        self.aliases = aliases

    def apply(self, operations: Sequence[models.AliasOperations], is_collection: Callable[[str], bool]) -> None:
        """Apply every operation or none (a rejected one raises ValueError and changes nothing)."""
        aliases = dict(self.aliases)
        for operation in operations:
            if isinstance(operation, models.CreateAliasOperation):
                create = operation.create_alias
                if not is_collection(create.collection_name):
                    raise ValueError(f"Collection {create.collection_name} not found")
                if is_collection(create.alias_name):
                    raise ValueError(f"Collection {create.alias_name} already exists")
                aliases[create.alias_name] = create.collection_name
            elif isinstance(operation, models.DeleteAliasOperation):
                aliases.pop(operation.delete_alias.alias_name, None)
            elif isinstance(operation, models.RenameAliasOperation):
                rename = operation.rename_alias
                if is_collection(rename.new_alias_name):
                    raise ValueError(f"Collection {rename.new_alias_name} already exists")
                if rename.old_alias_name not in aliases:
                    raise ValueError(f"Alias {rename.old_alias_name} does not exist")
                aliases[rename.new_alias_name] = aliases.pop(rename.old_alias_name)
            else:
                raise ValueError(f"Unknown operation: {operation}")
        self._save(aliases)

    def drop_collection(self, collection: str) -> None:
        """Qdrant deletes a collection's aliases with it."""
        if collection in self.aliases.values():
            self._save({alias: name for alias, name in self.aliases.items() if name != collection})

    def descriptions(self, collection: str | None = None) -> list[models.AliasDescription]:
        return [models.AliasDescription(alias_name=alias, collection_name=name)
                for alias, name in self.aliases.items() if collection is None or name == collection]
