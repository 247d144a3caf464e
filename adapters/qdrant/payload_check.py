"""What a document's metadata may hold: what Qdrant stores as a JSON payload, on every engine alike.

Qdrant keeps payloads as JSON: objects with string keys, arrays, strings, finite numbers (integers
within 64 bits), booleans and null. A value outside that (NaN or infinity, a string with an unpaired
surrogate, ``bytes``, a numpy scalar, an arbitrary object) is accepted by LangChain and fails only at
the upsert, after earlier batches, or earlier collections, were written; the engines even differ
(the edge engine fails on NaN with ``failed to extract enum Helper``, local mode stores it). So
:func:`check_metadata` runs over the whole call before anything is written (docs/ARCHITECTURE.md
invariant 15) and names the first value it cannot store, its path and what to pass instead. Values
that qdrant-client converts the same way on every engine (``pydantic_core.to_jsonable_python``: a
``datetime`` to its ISO string, a set to a list, a ``Decimal`` or ``UUID`` to a string) are checked
in their converted form and accepted; ``bytes`` are refused (they would come back as a str).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic_core import PydanticSerializationError, to_jsonable_python

from clicktune.adapters.errors import InvalidDocumentsError

#: Qdrant stores payload integers as signed 64-bit numbers.
INT64 = (-(2**63), 2**63 - 1)
#: Nesting beyond this is refused rather than risking the recursion limit on the way to Qdrant.
MAX_DEPTH = 32


def _where(path: list[str]) -> str:
    return "".join(path)


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def check_value(value: Any, path: list[str], seen: tuple[int, ...] = ()) -> None:
    """Raise :class:`InvalidDocumentsError` naming ``path`` if ``value`` is not storable as is."""
    where = _where(path)
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise InvalidDocumentsError(
                f"{where} is the integer {value}, outside the 64-bit range Qdrant stores; pass it as a string")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidDocumentsError(
                f"{where} is {value!r}: Qdrant stores finite numbers only (JSON has no NaN or infinity); "
                "pass None, a finite number, or a string such as 'nan'")
        return
    if isinstance(value, str):
        if not _valid_unicode(value):
            raise InvalidDocumentsError(
                f"{where} is the string {_shown(value)}, which holds an unpaired surrogate and is not valid "
                "Unicode: decode the source bytes with errors='replace', or drop the character")
        return
    if id(value) in seen:
        raise InvalidDocumentsError(f"{where} contains itself: metadata must be a tree of dicts and lists")
    if len(path) > MAX_DEPTH:
        raise InvalidDocumentsError(f"{where} is nested deeper than {MAX_DEPTH} levels: flatten the metadata")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, (str, int, float)) or (isinstance(key, str) and not _valid_unicode(key)):
                raise InvalidDocumentsError(
                    f"{where} has the key {key!r}: payload keys must be valid Unicode strings; convert it with str()")
            check_value(item, [*path, f"[{key!r}]"], (*seen, id(value)))
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_value(item, [*path, f"[{i}]"], (*seen, id(value)))
        return
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise InvalidDocumentsError(
            f"{where} is of type {type(value).__name__}: Qdrant's JSON payload has no bytes (they would come back "
            "as a str, or fail); decode it to a str, or base64-encode it")
    try:  # what qdrant-client and both embedded engines do to a payload before storing it
        converted = to_jsonable_python(value)
    except (PydanticSerializationError, ValueError) as exc:
        hint = ("pass int() or float() of it" if type(value).__module__ == "numpy"
                else "pass a str, a number, a bool, None, or a list or dict of those")
        raise InvalidDocumentsError(
            f"{where} is of type {type(value).__name__}, which Qdrant cannot store as a JSON payload "
            f"({type(exc).__name__}): {hint}") from None
    check_value(converted, path, (*seen, id(value)))  # a set becomes a list, a datetime its ISO string...


def check_metadata(index: int, metadata: Mapping[str, Any]) -> None:
    """Refuse metadata ``index`` unless every value in it is storable as is (see the module's docstring)."""
    check_value(metadata, [f"metadata {index}"])
