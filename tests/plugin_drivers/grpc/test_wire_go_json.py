"""``config_data`` reaches plugins as Go's ``json.Marshal`` writes it (what Tyk sends)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin_drivers.coprocess.wire import go_json


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": [True, None]}, '{"a":[true,null],"b":1}'),
        ({"x": 1.0, "y": -0.5, "z": 0.0}, '{"x":1,"y":-0.5,"z":0}'),
        ([1e21, 1.5e-7, 1e20, 0.000001], "[1e+21,1.5e-7,100000000000000000000,0.000001]"),
        ([12345678901234567890], "[12345678901234567000]"),  # float64, as Go decodes it
        ("<a href='x'>&</a>", '"\\u003ca href=\'x\'\\u003e\\u0026\\u003c/a\\u003e"'),
        ("é\u2028\n\"", '"é\\u2028\\n\\""'),
    ],
)
def test_like_go(value: Any, expected: str) -> None:
    assert go_json(value) == expected


_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_json)
def test_is_the_same_json_value(value: Any) -> None:
    # Go writes float64 values with the shortest digits: they read back as the same float.
    assert json.loads(go_json(value), parse_int=float) == value
