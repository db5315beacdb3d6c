"""Plain field paths read records the way the general path walk does, on every shape a vendor may send."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from engine.mapping.paths import _step, make_getter, parse_path


def walk(record: Any, text: str) -> Any:
    """The general walk, one step at a time: what every specialised getter must agree with."""
    value = record
    for part in parse_path(text):
        value = _step(value, part)
        if value is None:
            return None
    return value


class Items(list):  # a list subclass, as some JSON decoders hand back
    pass


leaf = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.booleans())
item = st.one_of(leaf, st.dictionaries(st.sampled_from(["City", "Line1"]), leaf, max_size=2),
                 st.dictionaries(st.sampled_from(["City"]), leaf, max_size=1).map(MappingProxyType))
addresses = st.one_of(leaf, st.lists(item, max_size=3), st.lists(item, max_size=3).map(Items),
                      st.dictionaries(st.sampled_from(["0", "City"]), leaf, max_size=2))
records = st.fixed_dictionaries({}, optional={"Addresses": addresses, "Name": leaf})


@given(records, st.sampled_from(["Addresses[0].City", "Addresses[1].City", "Addresses[2].Line1", "Name",
                                 "Addresses.City", "Addresses[0]", "Addresses[0].City.Deeper"]))
def test_every_getter_agrees_with_the_general_walk(record: dict[str, Any], path: str) -> None:
    assert make_getter(path)(record) == walk(record, path)


def test_item_paths_on_the_shapes_vendors_send() -> None:
    get = make_getter("Addresses[0].City")
    assert get({"Addresses": [{"City": "Leeds"}]}) == "Leeds"
    assert get({"Addresses": Items([MappingProxyType({"City": "York"})])}) == "York"
    assert get({"Addresses": []}) is None and get({"Addresses": None}) is None and get({}) is None
    assert get({"Addresses": {"0": {"City": "Leeds"}}}) is None  # an object is not a list
    assert get({"Addresses": ["Leeds"]}) is None  # an item that is not an object has no fields
