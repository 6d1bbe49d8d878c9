"""The one place that imports fhir.resources: FHIR R4 validation through its R4B models (EHRs send R4).

The FHIR door validates only what a rule will read: only the resources it classified as relevant, and of those only
the elements it reads (``elements``: see ``cds_service.fhir.snapshot.READ_ELEMENTS``) plus the elements FHIR
requires. A malformed element that is read makes the resource invalid, as before; a malformed element that nothing
reads (a performer reference, an identifier) no longer hides an otherwise readable result from the rules.

The verdict is always fhir.resources' verdict on that projection. fhir.resources costs ~100-300 µs per resource
(a pydantic model and Python validators per nested element), so a strict fast path runs first: it walks the
projection against the same R4B model metadata (field names, types, cardinality, choice groups, required
elements) and accepts plain, common values only when fhir.resources certainly accepts them (``bench/validator_check.py``
checks that claim against fhir.resources). Anything else (extensions on primitives, contained resources, strings
where numbers belong, leap seconds, unknown elements...) goes to fhir.resources, which decides and explains.
"""

from __future__ import annotations

import datetime as _dt
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import BaseModel, ValidationError

# element name -> None (the whole element) or a nested projection of it. "name[x]" stands for every type of a
# choice element ("value[x]": valueQuantity, valueString, ...). Elements FHIR requires are always kept.
Elements = Mapping[str, "Elements | None"]


class InvalidResource(ValueError):
    """Raised when a resource a rule needs is not valid FHIR R4; the message names the first bad field."""


def validate(resource: dict[str, Any], elements: Elements | None = None) -> None:
    """Check ``resource`` (or, given ``elements``, what is read of it) against its R4B model.

    Raises InvalidResource with a short, PHI-free reason.
    """
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        raise InvalidResource("resourceType is missing")
    model = _model(rtype)
    if elements is not None:
        resource = _project(resource, _Plan.of(model, elements))
    if _certainly_valid(resource, _table(model), top=True):
        return
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())) or rtype
        raise InvalidResource(f"{rtype}.{where}: {first.get('type', 'invalid')}") from None
    except Exception as exc:  # noqa: BLE001 - fhir.resources raises TypeError, ValueError, even AttributeError
        # (``"_status": "1"``) on some malformed input: whatever it raises, the resource is not valid FHIR.
        raise InvalidResource(f"{rtype}: {type(exc).__name__}") from None


@lru_cache(maxsize=256)
def _model(rtype: str) -> type[BaseModel]:
    try:
        model: type[BaseModel] = get_fhir_model_class(rtype)
    except (KeyError, ValueError) as exc:
        raise InvalidResource(f"unknown resourceType {rtype!r}") from exc
    return model


# -- the model metadata, flattened once per model class ---------------------------------------------------------
_PRIMITIVES = {
    "String": "string", "Code": "code", "Id": "id", "Uri": "uri", "Canonical": "uri", "Markdown": "string",
    "DateTime": "dateTime", "Date": "date", "Instant": "instant", "Decimal": "decimal", "Integer": "integer",
    "UnsignedInt": "unsignedInt", "PositiveInt": "positiveInt",
}  # fmt: skip
_UNSUPPORTED = "unsupported"  # a type the fast path does not judge (xhtml, base64, time, url, contained resources...)


@dataclass(frozen=True, slots=True)
class _Field:
    kind: str  # "complex", a primitive name from _PRIMITIVES, "boolean" or _UNSUPPORTED
    many: bool
    model: Any = None  # for "complex": the fhir_core type whose get_model_klass() is the element's model


@dataclass(frozen=True, slots=True)
class _Table:
    resource_type: str
    fields: dict[str, _Field]  # by JSON name; "_x" primitive-extension siblings are absent (not judged)
    required: tuple[str, ...]
    choices: dict[str, tuple[tuple[str, ...], bool]]  # "value" -> (("valueQuantity", ...), required)


def _describe(annotation: Any) -> _Field:
    many = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return _Field(_UNSUPPORTED, many)
            annotation = args[0]
        elif origin in (list, typing.List):  # noqa: UP006 - fhir.resources annotates with typing.List
            if many:
                return _Field(_UNSUPPORTED, many)
            many, annotation = True, typing.get_args(annotation)[0]
        else:
            break
    if typing.get_origin(annotation) is typing.Annotated:
        for meta in annotation.__metadata__:
            kind = _PRIMITIVES.get(type(meta).__name__)
            if kind is not None:
                return _Field(kind, many)
        return _Field(_UNSUPPORTED, many)
    if annotation is bool:
        return _Field("boolean", many)
    getter = getattr(annotation, "get_model_klass", None)
    if getter is not None and getattr(annotation, "_model_klass", "").rsplit(".", 1)[-1] not in ("Resource", "Element"):
        return _Field("complex", many, annotation)
    return _Field(_UNSUPPORTED, many)


@lru_cache(maxsize=None)
def _table(model: type[BaseModel]) -> _Table:
    fields: dict[str, _Field] = {}
    required: list[str] = []
    choices: dict[str, tuple[list[str], bool]] = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if name.endswith("__ext") or not extra.get("element_property"):
            continue
        key = info.alias or name
        fields[key] = _describe(info.annotation)
        if extra.get("element_required") or info.is_required():
            required.append(key)
        if group := extra.get("one_of_many"):
            members, needed = choices.setdefault(str(group), ([], bool(extra.get("one_of_many_required"))))
            members.append(key)
    return _Table(
        resource_type=str(getattr(model, "__resource_type__", model.__name__)),
        fields=fields,
        required=tuple(required),
        choices={group: (tuple(members), needed) for group, (members, needed) in choices.items()},
    )


_SUB_TABLES: dict[Any, _Table] = {}


def _sub_table(field_type: Any) -> _Table:
    try:
        return _SUB_TABLES[field_type]
    except KeyError:
        table = _SUB_TABLES[field_type] = _table(field_type.get_model_klass())
        return table


# -- projection: keep what is read, and what FHIR requires --------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Plan:
    keep: frozenset[str]  # JSON names kept whole (and their "_name" siblings)
    nested: dict[str, _Plan]  # JSON name -> projection of that element

    @staticmethod
    @lru_cache(maxsize=None)
    def _of(model: type[BaseModel], frozen: tuple[tuple[str, Any], ...]) -> _Plan:
        table = _table(model)
        keep: set[str] = {"resourceType", "id", *table.required}
        for members, required in table.choices.values():
            if required:
                keep.update(members)
        nested: dict[str, _Plan] = {}
        for name, sub in frozen:
            names = _expand(table, name)
            if sub is None:
                keep.update(names)
                continue
            for n in names:
                f = table.fields[n]
                if f.kind != "complex":
                    raise ValueError(f"{model.__name__}.{n} is not a complex element: it cannot be projected")
                if n not in keep:  # an element FHIR requires is kept whole
                    nested[n] = _Plan._of(f.model.get_model_klass(), sub)
        keep |= {f"_{k}" for k in keep}
        return _Plan(frozenset(keep), nested)

    @classmethod
    def of(cls, model: type[BaseModel], elements: Elements) -> _Plan:
        return cls._of(model, _freeze(elements))


def _freeze(elements: Elements) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, None if v is None else _freeze(v)) for k, v in elements.items()))


def _expand(table: _Table, name: str) -> tuple[str, ...]:
    if name.endswith("[x]"):
        if name[:-3] not in table.choices:
            raise ValueError(f"{table.resource_type} has no choice element {name}")
        return table.choices[name[:-3]][0]
    if name not in table.fields:
        raise ValueError(f"{table.resource_type} has no element {name}")
    return (name,)


def _project(value: dict[str, Any], plan: _Plan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in plan.keep:
            out[key] = item
            continue
        sub = plan.nested.get(key)
        if sub is None:
            continue
        if isinstance(item, dict):
            if projected := _project(item, sub):
                out[key] = projected
        elif isinstance(item, list):
            kept = [(_project(i, sub) if isinstance(i, dict) else i) for i in item]
            if kept := [i for i in kept if i != {}]:
                out[key] = kept
        else:
            out[key] = item  # not an object: leave it for validation to refuse
    return out


# -- the fast path ------------------------------------------------------------------------------------------------
# Stricter than fhir.resources everywhere: a value it does not accept is not "invalid", just not judged here.
_CODE = re.compile(r"[^\s]+(?: [^\s]+)*")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_NO_SPACE = re.compile(r"\S+")
_DATE_TIME = re.compile(
    r"([1-9][0-9]{3})(?:-(0[1-9]|1[0-2])(?:-(0[1-9]|[12][0-9]|3[01])"
    r"(T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?(?:Z|[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?"
)
_MAX_INT = 2_147_483_647


def _valid_date(m: re.Match[str]) -> bool:
    if m[3] is None:
        return True
    try:
        _dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return False
    return True


def _date_time(v: Any) -> bool:
    return type(v) is str and (m := _DATE_TIME.fullmatch(v)) is not None and _valid_date(m)


def _date(v: Any) -> bool:
    return type(v) is str and (m := _DATE_TIME.fullmatch(v)) is not None and m[4] is None and _valid_date(m)


def _instant(v: Any) -> bool:
    return type(v) is str and (m := _DATE_TIME.fullmatch(v)) is not None and m[4] is not None and _valid_date(m)


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: type(v) is str and v != "",
    "code": lambda v: type(v) is str and _CODE.fullmatch(v) is not None,
    "id": lambda v: type(v) is str and _ID.fullmatch(v) is not None,
    "uri": lambda v: type(v) is str and _NO_SPACE.fullmatch(v) is not None,
    "boolean": lambda v: type(v) is bool,
    "decimal": lambda v: (type(v) is int and -(10**18) < v < 10**18) or (type(v) is float and abs(v) < 1e18),
    "integer": lambda v: type(v) is int and -_MAX_INT - 1 <= v <= _MAX_INT,
    "unsignedInt": lambda v: type(v) is int and 0 <= v <= _MAX_INT,
    "positiveInt": lambda v: type(v) is int and 1 <= v <= _MAX_INT,
    "dateTime": _date_time,
    "date": _date,
    "instant": _instant,
}


def _certainly_valid(value: Any, table: _Table, *, top: bool = False) -> bool:
    """True only when fhir.resources would certainly accept ``value`` as an instance of ``table``'s model."""
    if type(value) is not dict or not value:
        return False
    fields = table.fields
    for key, item in value.items():
        if key == "resourceType" and top:
            if item != table.resource_type:
                return False
            continue
        f = fields.get(key)
        if f is None or item is None:
            return False
        if f.many:
            if type(item) is not list or not item:
                return False
            items: list[Any] = item
        else:
            items = [item]
        if f.kind == "complex":
            sub = _sub_table(f.model)
            for i in items:
                if not _certainly_valid(i, sub):
                    return False
        else:
            check = _CHECKS.get(f.kind)
            if check is None:
                return False
            for i in items:
                if not check(i):
                    return False
    for name in table.required:
        if name not in value:
            return False
    for members, required in table.choices.values():
        present = sum(1 for m in members if m in value)
        if present > 1 or (required and present == 0):
            return False
    return True
