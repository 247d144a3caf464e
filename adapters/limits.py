"""The longest ids clicktune stores, defined once and checked the same way at every door.

The feedback database keeps document, user and session ids in fixed-width columns (``varchar`` on
PostgreSQL). SQLite would store a longer id silently and PostgreSQL refuse it, and the same goes for a
NUL character or an unpaired surrogate in an id or a query (PostgreSQL text holds neither), so the
limits are checked before anything is written, by the same functions wherever such an id comes in:
``add_texts`` (a document that could never be clicked is never indexed), searches (their user and
session), impressions and clicks (``clicklog.clicks.ClickInput``). The schema's column widths are
these constants too. A search id is checked here as well: it is a UUID string, or no search made it.
"""

from __future__ import annotations

import uuid
from typing import Any

from clicktune.adapters.errors import InvalidQueryError, MalformedIdError

#: A document id (the caller's id in Qdrant, ``Document.id``, the click log's ``doc_id``).
MAX_DOC_ID_LENGTH = 512
#: The user a search or a click is attributed to.
MAX_USER_ID_LENGTH = 255
#: The session a search belongs to.
MAX_SESSION_ID_LENGTH = 255


def _shown(value: Any) -> str:
    """``repr`` of an id, cut short when it is long (the message must stay readable)."""
    if isinstance(value, str) and len(value) > 40:
        return f"{value[:20]!r}... ({len(value)} characters)"
    return repr(value)


def unstorable_text(value: str) -> str | None:
    """What in ``value`` no backend can store as text (PostgreSQL refuses both), or None."""
    if "\x00" in value:
        return "a NUL character (\\x00)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "an unpaired surrogate (not valid Unicode)"
    return None


def _check_storable(value: str, what: str) -> None:
    if (problem := unstorable_text(value)) is not None:
        raise MalformedIdError(f"{what} {_shown(value)} holds {problem}, which the click log cannot store; remove it")


def check_doc_id(value: Any, *, what: str = "document id") -> str:
    """``value`` if it is a document id every part of clicktune can hold, else :class:`MalformedIdError`."""
    if not isinstance(value, str):
        raise MalformedIdError(f"{what} {_shown(value)} is of type {type(value).__name__}, not str; pass ids as strings")
    if not value.strip() or len(value) > MAX_DOC_ID_LENGTH:
        raise MalformedIdError(
            f"{what} {_shown(value)} must be a non-empty string of at most {MAX_DOC_ID_LENGTH} characters"
        )
    _check_storable(value, what)
    return value


def check_query(value: Any) -> str:
    """``value`` if it is a search query clicktune can embed and log, else :class:`InvalidQueryError`.

    Refused alike whether or not the search is logged, and on every backend: a query with a NUL
    character would be answered on SQLite and lose its impression on PostgreSQL.
    """
    if not isinstance(value, str):
        raise InvalidQueryError(f"the query is of type {type(value).__name__}, not str: pass the query text")
    if (problem := unstorable_text(value)) is not None:
        raise InvalidQueryError(f"the query {_shown(value)} holds {problem}, which the click log cannot store; "
                                "remove it from the query")
    return value


def check_search_id(value: Any) -> str:
    """``value`` if it is a search id clicktune could have issued (a UUID, as a string), else
    :class:`MalformedIdError`; impressions and clicks use it alike."""
    try:
        uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        raise MalformedIdError(
            f"search id {_shown(value)} is not a UUID; use metadata['clicktune']['search_id'] of a result") from None
    if not isinstance(value, str):
        raise MalformedIdError(f"search id must be a string, got {type(value).__name__}")
    return value


def _check_optional(value: Any, limit: int, what: str) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise MalformedIdError(f"{what} {_shown(value)} is of type {type(value).__name__}, not str; pass a string or None")
    if len(value) > limit:
        raise MalformedIdError(f"{what} {_shown(value)} is longer than {limit} characters; pass a shorter one")
    _check_storable(value, what)


def check_user_id(value: Any, *, what: str = "user id") -> None:
    """Refuse (:class:`MalformedIdError`) a user id the feedback database cannot hold; None is fine."""
    _check_optional(value, MAX_USER_ID_LENGTH, what)


def check_session_id(value: Any, *, what: str = "session id") -> None:
    """Refuse (:class:`MalformedIdError`) a session id the feedback database cannot hold; None is fine."""
    _check_optional(value, MAX_SESSION_ID_LENGTH, what)
