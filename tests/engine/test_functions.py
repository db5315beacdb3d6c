"""Golden tests for every library function (its published examples plus edge cases) and round-trip properties."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.mapping import MappingError, StepError
from engine.mapping.functions import REGISTRY, build_step, run_example

ALL_EXAMPLES = [(name, i) for name, spec in REGISTRY.items() for i in range(len(spec.examples))]


@pytest.mark.parametrize(("name", "index"), ALL_EXAMPLES)
def test_published_examples_hold(name, index):
    spec = REGISTRY[name]
    ex = spec.examples[index]
    out = run_example(spec, ex)
    assert out == ex.output and type(out) is type(ex.output)


def test_every_function_is_documented():
    for spec in REGISTRY.values():
        d = spec.to_dict()
        assert d["description"] and d["category"] and d["examples"]
        assert spec.phrase({a.name: a.default for a in spec.args} | spec.example.args)


def step(name, **args):
    return build_step(name, args)[2]


GOLDEN = [
    ("trim", {}, "\tx ", "x"),
    ("upper", {}, "ab", "AB"),
    ("split", {"separator": ",", "index": 5}, "a,b", None),
    ("to_date", {"from": "uk"}, "31/12/99", "1999-12-31"),
    ("to_date", {"from": "uk"}, "1.2.2024", "2024-02-01"),
    ("to_date", {"from": "unix_ms"}, "1719788400000", "2024-07-01"),
    ("to_datetime", {"from": "iso"}, "2024-03-31T00:30:00Z", "2024-03-31T00:30:00+00:00"),
    ("to_datetime", {"from": "iso"}, "2024-03-31T01:30:00Z", "2024-03-31T02:30:00+01:00"),  # BST starts
    ("to_datetime", {"from": "unix"}, "1512085950.000216", "2017-11-30T23:52:30.000+00:00"),
    ("to_datetime", {"from": "text"}, "1 July 2024 9am", "2024-07-01T09:00:00+01:00"),
    ("format_date", {"to": "dotnet"}, "2024-07-01", "/Date(1719788400000+0000)/"),
    ("pounds_to_pence", {}, "(12.50)", -1250),
    ("pounds_to_pence", {}, 0.1 + 0.2, 30),
    ("pence_to_pounds", {}, -5, -0.05),
    ("add_vat", {"rate": 20}, 1, 1),
    ("remove_vat", {"rate": 20}, 1, 1),
    ("round", {"digits": 1}, "2.25", 2.3),
    ("value_map", {"map": {"a": 1}, "ignore_case": True}, "A", 1),
    ("postcode", {}, "gir0aa", "GIR 0AA"),
    ("phone_e164", {}, "+44 (0)20 7946 0018", "+442079460018"),
    ("sort_code", {}, 123456, "12-34-56"),
    ("split_name", {"part": "family"}, "Dr. Amara  Okafor-Jones", "Okafor-Jones"),
    ("to_boolean", {}, "N", False),
    ("first", {}, "solo", "solo"),
]


@pytest.mark.parametrize(("name", "args", "value", "expected"), GOLDEN)
def test_golden(name, args, value, expected):
    assert step(name, **args)(value, {}) == expected


BAD = [
    ("to_date", {"from": "uk"}, "31/02/2024"),
    ("to_date", {"from": "iso"}, "2024-13-01"),
    ("to_date", {"from": "dotnet"}, "/Date(abc)/"),
    ("to_datetime", {"from": "unix"}, "soon"),
    ("pounds_to_pence", {}, "twelve"),
    ("pounds_to_pence", {}, float("nan")),
    ("nhs_number", {}, "9434765918"),
    ("ni_number", {}, "BG123456C"),
    ("postcode", {}, "SW1A"),
    ("phone_e164", {}, "12345"),
    ("value_map", {"map": {"a": 1}}, "b"),
    ("to_boolean", {}, "maybe"),
    ("upper", {}, {"a": 1}),
    ("map_items", {"fields": {"a": "b"}}, "not a list"),
]


@pytest.mark.parametrize(("name", "args", "value"), BAD)
def test_bad_values_raise_step_errors(name, args, value):
    with pytest.raises(StepError):
        step(name, **args)(value, {})


def test_bad_arguments_are_mapping_errors():
    with pytest.raises(MappingError, match="rate"):
        build_step("add_vat", {"rate": 17})
    with pytest.raises(MappingError, match="Did you mean"):
        build_step("to_dat", {})
    with pytest.raises(MappingError, match="does not take"):
        build_step("trim", {"x": 1})
    with pytest.raises(MappingError, match="needs"):
        build_step("split", {})


def inverse(name, args):
    spec = REGISTRY[name]
    from engine.mapping.functions.registry import resolve_args

    resolved = resolve_args(spec, args)
    inv = spec.inverse(resolved)
    assert inv is not None
    if inv[0] == "identity":
        return lambda v, r: v
    return build_step(*inv)[2]


def roundtrip(name, args, x):
    f = step(name, **args)
    g = inverse(name, args)
    return g(f(x, {}), {})


dates = st.dates(min_value=__import__("datetime").date(1900, 1, 1), max_value=__import__("datetime").date(2099, 12, 31))


@settings(max_examples=60, deadline=None)
@given(dates, st.sampled_from(["iso", "uk", "us"]))
def test_to_date_round_trips(d, fmt):
    from engine.mapping.functions.dates import format_instant, parse_instant

    written = format_instant(parse_instant(d.isoformat(), "iso"), fmt, as_date=True)
    assert roundtrip("to_date", {"from": fmt}, written) == written


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=4_000_000_000), st.sampled_from(["unix", "unix_ms", "dotnet"]))
def test_to_datetime_round_trips(seconds, fmt):
    value = {"unix": seconds, "unix_ms": seconds * 1000, "dotnet": f"/Date({seconds * 1000}+0000)/"}[fmt]
    assert roundtrip("to_datetime", {"from": fmt}, value) == value


@given(st.integers(min_value=-10**12, max_value=10**12))
def test_pence_pounds_round_trip(pence):
    assert roundtrip("pence_to_pounds", {}, pence) == pence
    assert roundtrip("pence_to_pounds", {"as_text": True}, pence) == pence


@given(st.integers(min_value=-10**9, max_value=10**9).map(lambda p: f"{p / 100:.2f}"))
def test_pounds_to_pence_round_trip(text):
    assert roundtrip("pounds_to_pence", {}, text) == float(text)


@given(st.integers(min_value=-10**9, max_value=10**9), st.sampled_from([20, 5, 0]))
def test_vat_round_trip(net, rate):
    assert roundtrip("add_vat", {"rate": rate}, net) == net


@given(st.integers(min_value=-10**6, max_value=10**6), st.sampled_from([60, 100, 7]))
def test_multiply_divide_round_trip(n, factor):
    assert roundtrip("multiply", {"factor": factor}, n) == n


@given(st.lists(st.text(alphabet="abcxyz ", min_size=1, max_size=5), min_size=1, max_size=5))
def test_split_join_round_trip(items):
    assert roundtrip("join", {"separator": "|"}, items) == items


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.text(min_size=1, max_size=5), min_size=1, max_size=6))
def test_value_map_round_trips_when_injective(mapping):
    inv = REGISTRY["value_map"].inverse({"map": mapping, "default": None, "ignore_case": False})
    if len(set(mapping.values())) != len(mapping):
        assert inv is None
        return
    for k in mapping:
        assert roundtrip("value_map", {"map": mapping}, k) == k


@given(st.booleans(), st.sampled_from([("Y", "N"), ("Yes", "No"), (1, 0)]))
def test_boolean_round_trip(b, labels):
    args = {"true_value": labels[0], "false_value": labels[1]}
    assert roundtrip("format_boolean", args, b) == b


@given(st.sampled_from(["07911 123456", "020 7946 0018", "0161 496 0000"]))
def test_phone_round_trip(number):
    assert roundtrip("phone_e164", {"write_back_as": "national"}, number) == number
    e164 = step("phone_e164")(number, {})
    assert roundtrip("phone_e164", {}, e164) == e164


def test_non_invertible_functions_declare_no_inverse():
    for name in ("upper", "lower", "title_case", "replace", "pad", "substring", "template", "concat", "split_name",
                 "round", "coalesce", "constant", "to_integer"):
        assert REGISTRY[name].inverse is None, name
