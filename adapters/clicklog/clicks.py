"""The one input model of a click, and the one place a click is validated.

A click reaches the feedback database through three doors: ``ClickLog.record_click[s]`` (and the
plugin's functions over it), and the plugin's ``POST /clicks``. All three hand their input to
:func:`parse_clicks`, so a bad click is refused by the same rule with the same typed error
(a :class:`~clicktune.adapters.errors.FeedbackError` subclass) whichever door it came through.

Field names follow the stored record and the search API (``user_id``, as in
``similarity_search(user_id=...)``; ``dwell_seconds``, as in the database). The older names of the
click API, ``user`` and ``dwell``, are accepted as aliases: in a mapping, in JSON and as keywords.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from clicktune.adapters.errors import (
    FeedbackError,
    InvalidClickError,
    InvalidDwellError,
    InvalidGradeError,
    MalformedIdError,
)
from clicktune.adapters.limits import (
    MAX_DOC_ID_LENGTH,
    MAX_USER_ID_LENGTH,
    check_doc_id,
    check_search_id,
    check_user_id,
)

#: Current name -> the older name still accepted for it.
OLD_NAMES = {"dwell_seconds": "dwell", "user_id": "user"}


class ClickInput(BaseModel):
    """One reported click: a user opened ``doc_id`` from the results of search ``search_id``.

    The validators raise clicktune's own errors (``MalformedIdError``, ``InvalidDwellError``,
    ``InvalidGradeError``); :func:`parse_clicks` unwraps them from pydantic's ``ValidationError`` so
    callers see the typed error. Types are checked strictly on purpose (no ``"3"`` for a grade, no
    ``True`` for 1): a beacon sending the wrong type has a bug worth hearing about, and Python
    callers and JSON callers must be refused alike. The grade's upper bound is the click log's
    ``max_grade``, passed as validation context (``{"max_grade": n}``); without it only ``>= 0`` is
    checked. The click's time is not an input: the log stamps it when stored, so a client cannot
    move a click into the click window.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True,
        # the JSON schema (served as POST /clicks's request body) describes the input, not the code
        json_schema_extra={"description": "One click on a search result. 'user' and 'dwell' are accepted "
                                          "for user_id and dwell_seconds (their older names)."},
    )

    search_id: str = Field(
        json_schema_extra={"format": "uuid"},
        description="metadata['clicktune']['search_id'] of the clicked result",
    )
    doc_id: str = Field(
        min_length=1, max_length=MAX_DOC_ID_LENGTH, description="Document.id of the clicked result",
    )
    user_id: str | None = Field(
        default=None, max_length=MAX_USER_ID_LENGTH, validation_alias=AliasChoices("user_id", "user"),
        description="who clicked (also accepted as 'user', its older name); validated but not trusted: the "
                    "click is stored as the user its search was logged with",
    )
    dwell_seconds: float | None = Field(
        default=None, ge=0, validation_alias=AliasChoices("dwell_seconds", "dwell"),
        description="seconds spent on the document (also accepted as 'dwell', its older name)",
    )
    grade: int | None = Field(default=None, ge=0, description="an explicit relevance grade, 0..max_grade")

    @model_validator(mode="before")
    @classmethod
    def _one_name_per_field(cls, data: Any) -> Any:
        """A field given under both its names is ambiguous: refuse it rather than pick one silently."""
        if isinstance(data, Mapping):
            for name, old in OLD_NAMES.items():
                if name in data and old in data:
                    raise InvalidClickError(f"give {name} or its older name {old}, not both")
        return data

    @field_validator("search_id", mode="before")
    @classmethod
    def _search_id(cls, value: Any) -> Any:
        return check_search_id(value)

    @field_validator("doc_id", mode="before")
    @classmethod
    def _doc_id(cls, value: Any) -> Any:
        try:
            return check_doc_id(value)
        except MalformedIdError as exc:
            raise MalformedIdError(f"{exc} (the Document.id of a result)") from None

    @field_validator("user_id", mode="before")
    @classmethod
    def _user_id(cls, value: Any) -> Any:
        check_user_id(value)
        return value

    @field_validator("dwell_seconds", mode="before")
    @classmethod
    def _dwell(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise InvalidDwellError(f"dwell {value!r} must be a finite number of seconds >= 0, or None")
        return value

    @field_validator("grade", mode="before")
    @classmethod
    def _grade(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return None
        max_grade = (info.context or {}).get("max_grade")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (
                max_grade is not None and value > max_grade):
            allowed = f"from 0 to {max_grade}" if max_grade is not None else ">= 0"
            raise InvalidGradeError(f"grade {_shown(value)} must be an integer {allowed}, or None")
        return value


def _shown(value: Any) -> str:
    """``repr(value)`` for a message, except an integer too long to print: ``repr`` of a 5,000-digit
    int raises ``ValueError`` (Python's int_max_str_digits), which would replace the typed error."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**18:
        return f"{'-' if value < 0 else ''}(an integer of about {int(abs(value).bit_length() * 0.30103) + 1} digits)"
    return repr(value)


def parse_click(data: ClickInput | Mapping[str, Any], *, max_grade: int | None = None) -> ClickInput:
    """``data`` as a validated :class:`ClickInput`, or the typed :class:`FeedbackError` that refuses it.

    A ``ClickInput`` is validated again: it may have been built without the log's ``max_grade``.
    """
    if isinstance(data, ClickInput):
        data = {name: getattr(data, name) for name in ClickInput.model_fields}
    elif isinstance(data, Mapping):
        data = dict(data)
    try:
        return ClickInput.model_validate(data, context={"max_grade": max_grade})
    except ValidationError as exc:
        raise _typed(exc) from None


def parse_clicks(clicks: Iterable[ClickInput | Mapping[str, Any]], *, max_grade: int | None = None) -> list[ClickInput]:
    """Every click validated, or the first bad one's typed error (``click i: ...`` when there are several).

    Nothing is validated lazily: the caller writes only after this returns, so a batch with one bad
    click writes nothing.
    """
    batch = list(clicks)
    parsed: list[ClickInput] = []
    for i, data in enumerate(batch):
        try:
            parsed.append(parse_click(data, max_grade=max_grade))
        except InvalidClickError as exc:
            message = f"click {i}: {exc}" if len(batch) > 1 else str(exc)
            raise InvalidClickError(message, errors=exc.errors, index=i) from None
        except FeedbackError as exc:
            if len(batch) > 1:
                raise type(exc)(f"click {i}: {exc}") from None
            raise
    return parsed


def _typed(exc: ValidationError) -> FeedbackError:
    """The error to raise for a refused click.

    A wrong shape (not a mapping, a field missing, unknown or given twice) is reported whole, as one
    :class:`InvalidClickError` listing every problem, before any value: with the shape wrong, a
    value error may be a consequence. Otherwise the first field's own typed error.
    """
    shape: list[dict[str, Any]] = []
    value_errors: list[FeedbackError] = []
    for error in exc.errors():
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, FeedbackError) and not isinstance(cause, InvalidClickError):
            value_errors.append(cause)
        elif isinstance(cause, InvalidClickError):
            shape.append({"loc": list(error.get("loc", ())), "msg": str(cause)})
        elif error.get("type") == "model_type":  # pydantic's message names this class, not the input
            shape.append({"loc": [], "msg": f"a click is a mapping (a JSON object), not {type(error.get('input')).__name__}"})
        else:
            shape.append({"loc": list(error.get("loc", ())), "msg": error.get("msg")})
    if shape or not value_errors:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'click'}: {e['msg']}" for e in shape)
        return InvalidClickError(
            f"not a click ({problems}); a click has search_id, doc_id and optionally user_id (or user), "
            "dwell_seconds (or dwell) and grade", errors=shape)
    return value_errors[0]
