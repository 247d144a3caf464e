"""Aliases of the edge engine: one JSON file, replaced atomically, so a batch of operations is all or nothing.

qdrant_edge has no aliases. Qdrant applies ``update_collection_aliases`` as one change: either every
operation of the request takes effect or none does. Here the operations are applied to a copy, checked
as Qdrant checks them, and the copy is written to a temporary file, fsynced, renamed over
``aliases.json`` and the folder fsynced: a reader (or a process restarted after a crash) sees the old
file or the new one, never a mix.

A missing file must not read as "no aliases" (every search of the alias would answer nothing, with no
error). So the file always exists once the engine has set a folder up: a new folder gets an empty
``aliases.json``, then the marker ``edge-engine.json`` (both written atomically, in that order). A folder
with the marker and without ``aliases.json`` is damaged, and so is a file that is not a JSON object of
names: either raises :class:`EdgeAliasFileError` naming the file and ``clicktune repair`` whenever an
alias is read or changed. A folder from before the marker gets it (and an empty file where none was)
the first time it is opened.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from qdrant_client import models

from clicktune.adapters.durable import write_atomically
from clicktune.adapters.qdrant.errors import EdgeAliasFileError

FILE_NAME = "aliases.json"
#: Written once a folder's ``aliases.json`` exists: from then on a missing one is damage.
MARKER = "edge-engine.json"
REPAIR = ("`clicktune repair` writes it again from the registry's CURRENT (one run per alias: "
          "`clicktune --alias NAME repair`); or restore the file from a backup")


class AliasFile:
    """``alias -> collection`` kept in memory and in ``<root>/aliases.json``; callers hold the engine's lock."""

    def __init__(self, root: Path) -> None:
        self.path = root / FILE_NAME
        self._aliases: dict[str, str] = {}
        self.damage: EdgeAliasFileError | None = None
        marker = root / MARKER
        if not self.path.exists():
            if marker.exists():
                self.damage = EdgeAliasFileError(
                    f"the edge engine's alias file {self.path} is missing (the folder had one): no alias can be "
                    f"resolved; {REPAIR}", path=str(self.path))
                return
        try:  # setting the folder up: small atomic files; a full disk leaves it for the next open
            if not self.path.exists():
                self._save({})
            if not marker.exists():
                write_atomically(marker, json.dumps({"format": 1, "aliases": FILE_NAME}))
        except OSError:
            if not self.path.exists():
                return  # no file and no marker: no alias yet
        try:
            self._aliases = self._read()
        except (OSError, ValueError) as exc:
            self.damage = EdgeAliasFileError(
                f"the edge engine's alias file {self.path} cannot be read ({exc}): no alias can be resolved; "
                f"{REPAIR}", path=str(self.path))

    def _read(self) -> dict[str, str]:
        loaded = json.loads(self.path.read_text(encoding="utf-8"))
        if not isinstance(loaded, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in loaded.items()):
            raise ValueError("not a JSON object of alias -> collection names")
        return loaded

    @property
    def aliases(self) -> dict[str, str]:
        """``alias -> collection``; raises :class:`EdgeAliasFileError` while the file is damaged."""
        if self.damage is not None:
            raise self.damage
        return self._aliases

    def restore(self, aliases: dict[str, str]) -> Path | None:
        """Replace a damaged file by ``aliases`` (the damaged one is kept beside it); returns where it was
        kept, or None (missing file). Refused on a readable file: there is nothing to repair."""
        if self.damage is None:
            raise ValueError(f"{self.path} is readable: nothing to repair")
        kept = None
        if self.path.exists():
            kept = self.path.with_name(f"{FILE_NAME}.damaged-{uuid.uuid4().hex[:8]}")
            self.path.rename(kept)
        self._save(dict(aliases))
        self.damage = None
        return kept

    def _save(self, aliases: dict[str, str]) -> None:
        write_atomically(self.path, json.dumps(aliases, indent=1, sort_keys=True))
        self._aliases = aliases

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
        """Qdrant deletes a collection's aliases with it (a damaged file is left for the repair)."""
        if self.damage is None and collection in self.aliases.values():
            self._save({alias: name for alias, name in self.aliases.items() if name != collection})

    def descriptions(self, collection: str | None = None) -> list[models.AliasDescription]:
        return [models.AliasDescription(alias_name=alias, collection_name=name)
                for alias, name in self.aliases.items() if collection is None or name == collection]
