"""Hypothesis strategies shared by the parser fuzz tests: any JSON value, field names no
protocol uses, and valid messages mutated or extended."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

# Any JSON value: what a field holds once a peer gets its types wrong.
# Finite floats only: NaN and Infinity are not JSON, and the parsers reject them.
scalars = (st.none() | st.booleans() | st.integers()
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10)
# Field names no protocol uses: the services' future fields.
unknown_names = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10).map(
    lambda s: "x_" + s)

Path = tuple[str | int, ...]


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every node's path (dict keys and list indices), the root first."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, (*prefix, i))
    return out


def at(value: Any, path: Path) -> Any:
    for step in path:
        value = value[step]
    return value


@st.composite
def mutated(draw: st.DrawFn, corpus: list[dict[str, Any]]) -> Any:
    """A valid message with 1-4 changes: a value replaced by any JSON, a field removed or
    added (also at the top level, and the whole message replaced at the root)."""
    msg: Any = copy.deepcopy(draw(st.sampled_from(corpus)))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(paths(msg)))
        op = draw(st.sampled_from(["replace", "remove", "add"]))
        if op == "replace":
            new = draw(json_values)
            if path:
                at(msg, path[:-1])[path[-1]] = new
            else:
                msg = new
        elif op == "remove" and path:
            parent = at(msg, path[:-1])
            del parent[path[-1]]
        else:
            target = at(msg, path)
            if isinstance(target, dict):
                target[draw(st.text(max_size=8) | unknown_names)] = draw(json_values)
            elif isinstance(target, list):
                target.append(draw(json_values))
    return msg


@st.composite
def with_unknown_fields(draw: st.DrawFn, msg: dict[str, Any],
                        free_form: Callable[[Path], bool] = lambda path: False
                        ) -> dict[str, Any]:
    """``msg`` with fields of unknown names added to some of its objects (not to free-form
    maps, where any key is data)."""
    msg = copy.deepcopy(msg)
    objects = [p for p in paths(msg) if isinstance(at(msg, p), dict) and not free_form(p)]
    for path in draw(st.lists(st.sampled_from(objects), min_size=1, max_size=4)):
        at(msg, path)[draw(unknown_names)] = draw(json_values)
    return msg
