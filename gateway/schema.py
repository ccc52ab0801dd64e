"""Function declarations derived from Python signatures (used by :mod:`gateway.agent`).

Pydantic builds both the JSON Schema the model sees and the validator its arguments go
through, so the two can never disagree. The schema is then cleaned for the Live API: ``$ref``
pointers are inlined (a tool's schema is small, and inlined schemas are accepted by every
API version), pydantic's ``title`` keys are dropped (noise the model pays tokens for), and an
optional parameter's ``anyOf [T, null]`` becomes plain ``T``: the model simply leaves it out.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import pydantic

from gateway.errors import GatewayError

_SECTION: Final = re.compile(r"^(Args|Arguments|Parameters|Returns|Return|Raises|Yields|"
                             r"Examples|Example|Notes|Note|See Also|Attributes):\s*$")
_ARG_LINE: Final = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SCHEMA_LISTS: Final = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONE: Final = ("items", "additionalProperties", "not")


class ToolDefinitionError(GatewayError, TypeError):
    """A tool function cannot be declared to the model (missing hint, unsupported type...).

    Raised when the agent module is imported, so a mistake shows at start-up, not mid-call.
    """


@dataclass(frozen=True, slots=True)
class Docstring:
    summary: str
    params: Mapping[str, str]


def parse_docstring(doc: str | None) -> Docstring:
    """First paragraph as the summary, plus per-parameter text from a Google-style ``Args:``."""
    lines = inspect.cleandoc(doc or "").splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line.strip()):
            break
        summary.append(line.strip())
    params: dict[str, str] = {}
    current: str | None = None
    in_args = False
    indent = 0
    for line in lines:
        stripped = line.strip()
        if _SECTION.match(stripped):
            in_args = stripped.split(":")[0] in ("Args", "Arguments", "Parameters")
            indent, current = 0, None
            continue
        if not in_args or not stripped:
            continue
        here = len(line) - len(line.lstrip())
        match = _ARG_LINE.match(stripped)
        if match and (current is None or here <= indent):
            current, indent = match.group(1).lstrip("*"), here
            params[current] = match.group(2).strip()
        elif current is not None and here > indent:  # continuation of the previous entry
            params[current] = f"{params[current]} {stripped}".strip()
    return Docstring(" ".join(summary), params)


@dataclass(frozen=True, slots=True)
class Signature:
    """What a function's signature says to the model and to the validator."""

    args_model: type[pydantic.BaseModel]
    schema: Mapping[str, Any] | None  # None: the function takes no declared parameters
    injected: tuple[str, ...]  # parameters filled by the gateway (the CallContext)
    description: str


def derive(fn: Callable[..., Any], name: str, injected_type: type) -> Signature:
    """Build the validator and cleaned JSON Schema for ``fn``'s parameters."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except (NameError, TypeError) as exc:
        raise ToolDefinitionError(f"tool {name!r}: cannot resolve type hints: {exc}") from exc
    doc = parse_docstring(inspect.getdoc(fn))
    fields: dict[str, Any] = {}
    injected: list[str] = []
    for pname, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolDefinitionError(f"tool {name!r}: *args/**kwargs cannot be declared "
                                      f"to the model; name each parameter")
        if pname not in hints:
            raise ToolDefinitionError(f"tool {name!r}: parameter {pname!r} has no type hint")
        hint = hints[pname]
        if _strip_annotated(hint) is injected_type:
            injected.append(pname)
            continue
        default = ... if param.default is param.empty else param.default
        fields[pname] = (hint, default)
    try:
        model = pydantic.create_model(f"{name}_args",
                                      __config__=pydantic.ConfigDict(extra="forbid"),
                                      **fields)
        raw = model.model_json_schema()
    except (pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError, TypeError,
            ValueError) as exc:
        raise ToolDefinitionError(f"tool {name!r}: unsupported parameter type: {exc}") from exc
    schema = clean_schema(raw, name) if fields else None
    if schema is not None:
        for pname, prop in schema.get("properties", {}).items():
            if "description" not in prop and doc.params.get(pname):
                prop["description"] = doc.params[pname]
    return Signature(model, schema, tuple(injected), doc.summary)


def _strip_annotated(hint: Any) -> Any:
    return typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint


def clean_schema(schema: Mapping[str, Any], tool: str) -> dict[str, Any]:
    """Inline ``$ref``/``$defs``, drop ``title`` and collapse optional ``anyOf`` branches."""
    defs = schema.get("$defs", {})
    return _clean(schema, defs, tool, ())


def _clean(node: Mapping[str, Any], defs: Mapping[str, Any], tool: str,
           seen: tuple[str, ...]) -> dict[str, Any]:
    node = dict(node)
    ref = node.pop("$ref", None)
    if isinstance(ref, str):
        key = ref.rsplit("/", 1)[-1]
        if key in seen:
            raise ToolDefinitionError(f"tool {tool!r}: recursive type {key!r} cannot be "
                                      f"declared; flatten it")
        target = defs.get(key)
        if target is None:
            raise ToolDefinitionError(f"tool {tool!r}: unresolvable schema reference {ref!r}")
        # Keys beside the $ref (a field's description or default) override the target's.
        node = {**_clean(target, defs, tool, (*seen, key)), **node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "$defs"):
            continue
        if key == "properties":
            out[key] = {p: _clean(s, defs, tool, seen) for p, s in value.items()}
        elif key in _SCHEMA_LISTS:
            out[key] = [_clean(s, defs, tool, seen) for s in value]
        elif key in _SCHEMA_ONE and isinstance(value, Mapping):
            out[key] = _clean(value, defs, tool, seen)
        else:
            out[key] = value
    return _collapse_optional(out)


def _collapse_optional(node: dict[str, Any]) -> dict[str, Any]:
    # `x: T | None = None` is an optional parameter: to the model it is just `T`, left out
    # when unknown. A required `T | None` keeps its anyOf (the model must say null).
    branches = node.get("anyOf")
    if not isinstance(branches, list) or "default" not in node or node["default"] is not None:
        return node
    real = [b for b in branches if b != {"type": "null"}]
    if len(real) != 1 or len(real) == len(branches):
        return node
    merged = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
    return {**real[0], **merged}
