"""The locator finds the line of a key path in TOML text (tomllib gives values without positions)."""

from __future__ import annotations

import json
import tomllib

from hypothesis import given
from hypothesis import strategies as st

from vmenergy.runtime.scenario.locate import KeyLines

TEXT = '''\
# a comment with [brackets] and key = value
title = "a = b # not a comment"

[scenario]
name = 'x'
start = 2026-11-22T18:00:00Z
local = 1979-05-27 07:32:00

[market]
liquidity.sell = { volume = 60.0, prices = [0.08, 0.09,
                                            0.10] }
"quoted.key" = 1
text = """
line one
[not.a.table]
"""

[[aggregator]]
name = "a"
objective = { kind = "peak" }

[[aggregator]]
name = "b"

[aggregator.contract]
mode = "delegated"

[[prosumers]]
offers = ["x.json",
          "y.json"]   # trailing comment

[[prosumers.groups]]
n = 1

[[prosumers]]
count = 3

[[prosumers.groups]]
n = 2
[[prosumers.groups]]
n = 3
'''


def test_the_fixture_is_valid_toml():
    tomllib.loads(TEXT)


def test_top_level_keys_and_tables():
    lines = KeyLines(TEXT)
    assert lines.exact(("title",)) == 2
    assert lines.exact(("scenario",)) == 4
    assert lines.exact(("scenario", "name")) == 5
    assert lines.exact(("scenario", "start")) == 6
    assert lines.exact(("scenario", "local")) == 7


def test_dotted_keys_inline_tables_and_arrays_spread_over_lines():
    lines = KeyLines(TEXT)
    assert lines.exact(("market", "liquidity")) == 10
    assert lines.exact(("market", "liquidity", "sell", "volume")) == 10
    assert lines.exact(("market", "liquidity", "sell", "prices", 1)) == 10
    assert lines.exact(("market", "liquidity", "sell", "prices", 2)) == 11
    assert lines.exact(("market", "quoted.key")) == 12


def test_multi_line_strings_hide_what_looks_like_toml():
    lines = KeyLines(TEXT)
    assert lines.exact(("market", "text")) == 13
    assert lines.exact(("not", "a", "table")) is None
    assert lines.exact(("market", "not")) is None


def test_arrays_of_tables_are_numbered_per_occurrence():
    lines = KeyLines(TEXT)
    assert lines.exact(("aggregator", 0)) == 18
    assert lines.exact(("aggregator", 0, "name")) == 19
    assert lines.exact(("aggregator", 0, "objective", "kind")) == 20
    assert lines.exact(("aggregator", 1, "name")) == 23
    # a sub-table header belongs to the latest element of the array
    assert lines.exact(("aggregator", 1, "contract", "mode")) == 26
    assert lines.exact(("prosumers", 0, "offers", 1)) == 30


def test_nested_arrays_of_tables_are_numbered_per_parent_element():
    lines = KeyLines(TEXT)
    assert lines.exact(("prosumers", 0, "groups", 0, "n")) == 33
    assert lines.exact(("prosumers", 1, "count")) == 36
    assert lines.exact(("prosumers", 1, "groups", 0, "n")) == 39
    assert lines.exact(("prosumers", 1, "groups", 1, "n")) == 41


def test_a_path_not_written_points_at_its_nearest_written_ancestor():
    lines = KeyLines(TEXT)
    assert lines.line(("aggregator", 1, "cycle")) == 22  # a missing key: its table's header
    assert lines.line(("market", "liquidity", "sell", "prices", 7)) == 10
    assert lines.line(("nowhere", "at", "all")) is None


def test_strings_with_escaped_quotes_and_literal_strings():
    text = 'a = "say \\"b = 1\\""\nb = \'c:\\\\path\'\nc = """x""\\""""\nd = 4\n'
    assert tomllib.loads(text)["d"] == 4
    lines = KeyLines(text)
    assert [lines.exact((k,)) for k in "abcd"] == [1, 2, 3, 4]


# -- property: a document written key by key, each on a line we know -----------------------
keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-.1 ", min_size=1, max_size=8)
scalars = st.one_of(st.integers(-10, 10), st.booleans(), st.text(alphabet="ab =#[]{}\"'.,", max_size=6),
                    st.floats(allow_nan=False, allow_infinity=False))


def _key(k: str) -> str:
    return k if all(c.isalnum() or c in "_-" for c in k) else json.dumps(k)


def _inline(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_inline(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
                      max_leaves=6)
tables = st.dictionaries(keys, values, min_size=1, max_size=4)


@given(st.dictionaries(keys.filter(lambda k: k != "many"), tables, min_size=1, max_size=3),
       st.lists(tables, max_size=3))
def test_every_written_key_is_found_on_its_line(named, array):
    out, expect = [], {}
    for name, table in named.items():
        out.append(f"[{_key(name)}]")
        expect[(name,)] = len(out)
        for k, v in table.items():
            out.append(f"{_key(k)} = {_inline(v)}")
            expect[(name, k)] = len(out)
    for i, table in enumerate(array):
        out.append("[[many]]")
        expect[("many", i)] = len(out)
        for k, v in table.items():
            out.append(f"{_key(k)} = {_inline(v)}   # note")
            expect[("many", i, k)] = len(out)
    text = "\n".join(out) + "\n"
    tomllib.loads(text)
    lines = KeyLines(text)
    for path, line in expect.items():
        assert lines.exact(path) == line, (path, text)
