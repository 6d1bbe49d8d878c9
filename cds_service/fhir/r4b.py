"""The one place that imports fhir.resources: FHIR R4 validation through its R4B models (EHRs send R4).

The FHIR door validates only what a rule will read: only the resources it classified as relevant, and of those only
the elements it reads (``elements``, see ``cds_service.fhir.snapshot.READ_ELEMENTS``) plus the elements FHIR
requires. A malformed element that is read makes the resource invalid; a malformed element that nothing reads (a
performer reference, an identifier) does not hide an otherwise readable result from the rules.

The verdict is always fhir.resources' verdict on that projection. fhir.resources costs 100-300 µs per resource
(a pydantic model and several Python validators per nested element), so a strict fast path runs first: it walks
the projection against the same R4B model metadata (element names, types, cardinality, choice elements, required
elements) and accepts plain, common values only where fhir.resources certainly accepts them too
(``python -m bench.validator_check`` tests that claim against fhir.resources on mutated resources). Anything else
(extensions on primitives, contained resources, numbers as strings, leap seconds, empty objects, unknown
elements...) is left to fhir.resources, which decides and names the problem.
"""

from __future__ import annotations

import datetime as _dt
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import BaseModel, ValidationError

# element name -> None (the whole element) or a projection of it. "name[x]" stands for every type of a choice
# element ("value[x]": valueQuantity, valueString, ...). Elements FHIR requires are always kept whole.
Elements = Mapping[str, "Elements | None"]

MAX_DEPTH = 64  # objects and arrays nested in one resource; deeper is refused before anything recursive runs


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
    table = _table(model)
    plan = _plan(model, elements) if elements is not None else None
    try:
        if _read_valid(resource, table, plan) if plan is not None else _certainly_valid(resource, table, top=True):
            return
    except RecursionError:  # absurdly nested: _too_deep below says so
        pass
    if plan is not None:
        resource = _project(resource, plan)
    if _too_deep(resource, MAX_DEPTH):
        raise InvalidResource(f"{rtype}: nested deeper than {MAX_DEPTH} levels")
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        errors = exc.errors()
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
        kind = errors[0]["type"] if errors else "invalid"
        raise InvalidResource(f"{rtype}.{where or '(resource)'}: {kind}") from None
    except Exception as exc:  # fhir.resources raises TypeError, ValueError, even AttributeError
        # (``"_status": "1"``) on some malformed input: whatever it raises, the resource is not valid FHIR.
        raise InvalidResource(f"{rtype}: {type(exc).__name__}") from None


def prepare(rtype: str, elements: Elements | None = None) -> None:
    """Import ``rtype``'s model and build the fast path's tables now (at start-up) rather than in the first call.

    The first hook call then costs what every other call costs, and a ``gc.freeze()`` after start-up covers these
    long-lived objects too.
    """
    model = _model(rtype)
    table = _table(model)
    pending, seen = [table], {id(table)}
    while pending:  # every datatype reachable from the resource
        for f in pending.pop().fields.values():
            if f.complex_type is not None:
                sub = _table(f.complex_type.get_model_klass())
                if id(sub) not in seen:
                    seen.add(id(sub))
                    pending.append(sub)
    if elements is not None:
        _plan(model, elements)


@lru_cache(maxsize=256)
def _model(rtype: str) -> type[BaseModel]:
    try:
        model: type[BaseModel] = get_fhir_model_class(rtype)
    except (KeyError, ValueError) as exc:
        raise InvalidResource(f"unknown resourceType {rtype!r}") from exc
    return model


def _too_deep(value: Any, limit: int) -> bool:
    level, depth = [value], 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            children = node.values() if type(node) is dict else node if type(node) is list else ()
            below.extend(c for c in children if type(c) is dict or type(c) is list)
        level = below
    return False


# -- the fast path's checks ---------------------------------------------------------------------------------------
# Each is stricter than fhir.resources: a value a check refuses is not "invalid", only left to fhir.resources.
Check = Callable[[Any], bool]
_CODE = re.compile(r"[^\s]+(?: [^\s]+)*")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_NO_SPACE = re.compile(r"\S+")
_DATE_TIME = re.compile(
    r"([1-9][0-9]{3})(?:-(0[1-9]|1[0-2])(?:-(0[1-9]|[12][0-9]|3[01])"
    r"(T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?(?:Z|[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?"
)
_SPACE_OR_VISIBLE = re.compile(r"[ \r\n\t\S]")
_MAX_INT = 2_147_483_647


def _calendar_day(m: re.Match[str]) -> bool:
    day = m[3]
    if day is None or day <= "28":
        return True
    try:
        _dt.date(int(m[1]), int(m[2]), int(day))
    except ValueError:
        return False
    return True


def _date_time(v: Any) -> bool:
    return type(v) is str and (m := _DATE_TIME.fullmatch(v)) is not None and _calendar_day(m)


def _date(v: Any) -> bool:
    return type(v) is str and (m := _DATE_TIME.fullmatch(v)) is not None and m[4] is None and _calendar_day(m)


def _instant(v: Any) -> bool:
    return type(v) is str and (m := _DATE_TIME.fullmatch(v)) is not None and m[4] is not None and _calendar_day(m)


def _string(v: Any) -> bool:
    # fhir.resources' pattern is "[ \r\n\t\S]+", searched: a string made only of other whitespace (vertical tab,
    # no-break space, line separator...) is refused. str.isspace() covers every character that pattern's engine
    # calls whitespace, so a string that is not all space holds a character its "\S" matches.
    return type(v) is str and v != "" and (not v.isspace() or _SPACE_OR_VISIBLE.search(v) is not None)


def _never(_: Any) -> bool:
    return False


_PRIMITIVE_CHECKS: dict[str, Check] = {
    # fhir_core type name -> check
    "String": _string,
    "Markdown": _string,
    "Code": lambda v: type(v) is str and _CODE.fullmatch(v) is not None,
    "Id": lambda v: type(v) is str and _ID.fullmatch(v) is not None,
    "Uri": lambda v: type(v) is str and _NO_SPACE.fullmatch(v) is not None,
    "Canonical": lambda v: type(v) is str and _NO_SPACE.fullmatch(v) is not None,
    "Decimal": lambda v: (type(v) is int and -(10**18) < v < 10**18) or (type(v) is float and -1e18 < v < 1e18),
    "Integer": lambda v: type(v) is int and -_MAX_INT - 1 <= v <= _MAX_INT,
    "UnsignedInt": lambda v: type(v) is int and 0 <= v <= _MAX_INT,
    "PositiveInt": lambda v: type(v) is int and 1 <= v <= _MAX_INT,
    "DateTime": _date_time,
    "Date": _date,
    "Instant": _instant,
}


# -- the model metadata, flattened once per model class ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Field:
    many: bool
    check: Check  # one item (one array entry when ``many``)
    complex_type: Any = None  # for complex elements: the fhir_core type whose get_model_klass() is the model


@dataclass(frozen=True, slots=True)
class _Table:
    resource_type: str
    fields: dict[str, _Field]  # by JSON name; the "_x" extension siblings of primitives are absent (not judged)
    required: tuple[str, ...]
    choices: dict[str, tuple[tuple[str, ...], bool]]  # "value" -> (("valueQuantity", ...), required)
    choice_sets: tuple[tuple[frozenset[str], bool], ...]


def _complex_check(complex_type: Any) -> Check:
    table: _Table | None = None

    def check(value: Any) -> bool:
        nonlocal table
        if table is None:
            table = _table(complex_type.get_model_klass())
        return _certainly_valid(value, table)

    return check


def _describe(annotation: Any) -> _Field:
    many = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return _Field(many, _never)
            annotation = args[0]
        elif origin is list:
            if many:
                return _Field(many, _never)
            many, annotation = True, typing.get_args(annotation)[0]
        else:
            break
    if typing.get_origin(annotation) is typing.Annotated:
        for meta in annotation.__metadata__:
            check = _PRIMITIVE_CHECKS.get(type(meta).__name__)
            if check is not None:
                return _Field(many, check)
        return _Field(many, _never)  # base64Binary, time, url, uuid, oid, xhtml...
    if annotation is bool:
        return _Field(many, lambda v: type(v) is bool)
    target = getattr(annotation, "_model_klass", None)
    if isinstance(target, str) and hasattr(annotation, "get_model_klass"):
        if target.rsplit(".", 1)[-1] in ("Resource", "Element"):  # contained resources: left to fhir.resources
            return _Field(many, _never)
        return _Field(many, _complex_check(annotation), annotation)
    return _Field(many, _never)


@cache
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
            members, _ = choices.setdefault(str(group), ([], bool(extra.get("one_of_many_required"))))
            members.append(key)
    frozen = {group: (tuple(members), needed) for group, (members, needed) in choices.items()}
    return _Table(
        resource_type=str(getattr(model, "__resource_type__", model.__name__)),
        fields=fields,
        required=tuple(required),
        choices=frozen,
        choice_sets=tuple((frozenset(members), needed) for members, needed in frozen.values()),
    )


def _certainly_valid(value: Any, table: _Table, *, top: bool = False) -> bool:
    """True only when fhir.resources would certainly accept ``value`` as an instance of ``table``'s model."""
    if type(value) is not dict or not value:
        return False
    fields = table.fields
    for key, item in value.items():
        f = fields.get(key)
        if f is None:
            if top and key == "resourceType" and item == table.resource_type:
                continue
            return False
        check = f.check
        if f.many:
            if type(item) is not list or not item:
                return False
            for i in item:
                if not check(i):
                    return False
        elif not check(item):
            return False
    for name in table.required:
        if name not in value:
            return False
    for members, required in table.choice_sets:
        present = len(members.intersection(value))
        if present > 1 or (required and present == 0):
            return False
    return True


def _read_valid(value: dict[str, Any], table: _Table, plan: _Plan) -> bool:
    """``_certainly_valid(_project(value, plan), table)``, or stricter, without building the projection."""
    fields = table.fields
    keep, nested = plan.keep, plan.nested
    for key, item in value.items():
        if key in keep:
            f = fields.get(key)
            if f is None:
                if key == "resourceType" and item == table.resource_type:
                    continue
                return False
            check = f.check
            if f.many:
                if type(item) is not list or not item:
                    return False
                for i in item:
                    if not check(i):
                        return False
            elif not check(item):
                return False
            continue
        sub = nested.get(key)
        if sub is None:
            continue  # not read: not judged
        sub_table = _table(fields[key].complex_type.get_model_klass())
        if fields[key].many:
            if type(item) is not list:
                return False
            for i in item:
                if type(i) is not dict or not _read_valid(i, sub_table, sub):
                    return False
        elif type(item) is not dict or not _read_valid(item, sub_table, sub):
            return False
    for name in table.required:
        if name not in value:
            return False
    for members, required in plan.choice_sets:
        present = len(members.intersection(value))
        if present > 1 or (required and present == 0):
            return False
    return True


# -- projection: keep what is read, and what FHIR requires --------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Plan:
    keep: frozenset[str]  # JSON names kept whole (with their "_name" extension siblings)
    nested: dict[str, _Plan]  # JSON name -> projection of that element
    choice_sets: tuple[tuple[frozenset[str], bool], ...]  # the choice elements kept (always whole)


def _plan(model: type[BaseModel], elements: Elements) -> _Plan:
    key = (model, id(elements))
    cached = _PLANS.get(key)
    if cached is None or cached[0] is not elements:
        cached = _PLANS[key] = (elements, _build_plan(model, _freeze(elements)))
    return cached[1]


_PLANS: dict[tuple[type[BaseModel], int], tuple[Elements, _Plan]] = {}


def _freeze(elements: Elements) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, None if v is None else _freeze(v)) for k, v in elements.items()))


@cache
def _build_plan(model: type[BaseModel], elements: tuple[tuple[str, Any], ...]) -> _Plan:
    table = _table(model)
    keep: set[str] = {"resourceType", "id", *table.required}
    for members, required in table.choices.values():
        if required:
            keep.update(members)
    nested: dict[str, _Plan] = {}
    for name, sub in elements:
        names = _expand(table, name)
        if sub is None:
            keep.update(names)
            continue
        for n in names:
            complex_type = table.fields[n].complex_type
            if complex_type is None:
                raise ValueError(f"{table.resource_type}.{n} is not a complex element: it cannot be projected")
            if n not in keep:
                nested[n] = _build_plan(complex_type.get_model_klass(), sub)
    choice_sets = tuple((members, needed) for members, needed in table.choice_sets if members <= keep)
    keep |= {f"_{k}" for k in keep}
    return _Plan(frozenset(keep), nested, choice_sets)


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
    keep, nested = plan.keep, plan.nested
    for key, item in value.items():
        if key in keep:
            out[key] = item
            continue
        sub = nested.get(key)
        if sub is None:
            continue
        if type(item) is dict:
            if projected := _project(item, sub):
                out[key] = projected
        elif type(item) is list:
            kept = [(_project(i, sub) if type(i) is dict else i) for i in item]
            if kept := [i for i in kept if i != {}]:
                out[key] = kept
        else:
            out[key] = item  # not an object: left for validation to refuse
    return out
