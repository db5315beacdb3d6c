"""The pure migration core: fuzzy matching scores, duplicates, criteria (no database)."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.migration.criteria import (
    DEFAULT_ROLLBACK,
    DEFAULT_SUCCESS,
    all_hold,
    any_hold,
    describe,
    evaluate,
)
from engine.migration.legacy import sample_export, sample_nhs_number
from engine.migration.matching import (
    AUTO_MATCH,
    REVIEW,
    Person,
    find_duplicates,
    match_all,
    normalise_name,
    normalise_nhs,
    parse_date,
    person_from,
    score_pair,
)

names = st.sampled_from(["Margaret", "Peggy", "Dorothy", "Dot", "Arthur", "Walter", "O'Neil", "Smith-Jones"])
days = st.dates(min_value=date(1920, 1, 1), max_value=date(2005, 12, 31))
people = st.builds(lambda k, g, f, d, n: Person(k, normalise_name(g), normalise_name(f), d, n, None),
                   st.text(min_size=1, max_size=4), names, names, st.none() | days,
                   st.none() | st.sampled_from(["9990000018", "9990000026", "9434765919"]))


@given(people, people)
@settings(max_examples=300)
def test_scores_are_symmetric_and_bounded(a: Person, b: Person) -> None:
    ab, ba = score_pair(a, b), score_pair(b, a)
    assert 0.0 <= ab.score <= 1.0
    assert abs(ab.score - ba.score) < 1e-9


@given(people)
def test_a_person_matches_themself_fully_only_with_an_identifier(p: Person) -> None:
    score = score_pair(p, p)
    if p.nhs_number:
        assert score.score >= AUTO_MATCH
    else:
        assert REVIEW <= score.score < AUTO_MATCH or not (p.given or p.family)


def test_nicknames_swapped_dates_and_different_ids() -> None:
    peggy = person_from("a", {"givenName": "Peggy", "familyName": "Hall", "dateOfBirth": "02/04/1931"})
    margaret = person_from("b", {"givenName": "Margaret", "familyName": "Hall", "dateOfBirth": "1931-04-02"})
    swapped = person_from("c", {"givenName": "Margaret", "familyName": "Hall", "dateOfBirth": "1931-02-04"})
    assert score_pair(peggy, margaret).band == "possible"
    assert "same date of birth" in score_pair(peggy, margaret).reasons
    assert score_pair(margaret, swapped).score < score_pair(peggy, margaret).score
    one = person_from("d", {"givenName": "Arthur", "familyName": "Wood", "nhsNumber": "9990000018"})
    other = person_from("e", {"givenName": "Arthur", "familyName": "Wood", "nhsNumber": "9990000026"})
    assert score_pair(one, other).band == "new"  # same name, different NHS number: different people


def test_match_all_prefers_the_identifier_and_flags_ties() -> None:
    incoming = [person_from("x", {"givenName": "Joan", "familyName": "Ward", "dateOfBirth": "1940-01-01",
                                  "nhsNumber": "9990000018"})]
    existing = [person_from("r1", {"givenName": "Joan", "familyName": "Ward", "dateOfBirth": "1940-01-01",
                                   "nhsNumber": "9990000018"}),
                person_from("r2", {"givenName": "Joan", "familyName": "Ward", "dateOfBirth": "1940-01-01"})]
    (best,) = match_all(incoming, existing)
    assert best.existing == "r1" and best.band == "match"
    (none,) = match_all(incoming, [])
    assert none.existing is None and none.band == "new"


def test_sample_data_is_deterministic_and_uses_the_nhs_test_range() -> None:
    assert sample_export("carecontrol", "Resident") == sample_export("carecontrol", "Resident")
    import random

    rng = random.Random(1)
    for _ in range(50):
        number = sample_nhs_number(rng)
        assert number.startswith("999") and normalise_nhs(number) == number
    people_rows = [person_from(r["ResidentID"], {"givenName": r["Forename"], "familyName": r["Surname"],
                                                 "dateOfBirth": r["DOB"], "nhsNumber": r["NHSNo"]})
                   for r in sample_export("carecontrol", "Resident")]
    assert find_duplicates(people_rows) == [["R1003", "R1040"]]
    assert parse_date("31/02/1941") is None and parse_date("1941-02-28") == date(1941, 2, 28)


def test_criteria_read_as_sentences_and_evaluate() -> None:
    assert describe(DEFAULT_SUCCESS[0]) == "data accuracy (%) at least 99.9"
    good = {"accuracy_pct": 100.0, "missing_records": 0.0, "unconfirmed_matches": 0.0, "error_rate_pct": 0.5}
    assert all_hold(evaluate(DEFAULT_SUCCESS, good)) and not any_hold(evaluate(DEFAULT_ROLLBACK, good))
    bad = {**good, "error_rate_pct": 12.0}
    assert any_hold(evaluate(DEFAULT_ROLLBACK, bad))
    (unmeasured,) = evaluate([{"metric": "accuracy_pct", "op": ">=", "value": 99}], {})
    assert not unmeasured.holds and "not measured" in unmeasured.text
    (wrong,) = evaluate([{"metric": "speed", "op": ">=", "value": 1}], good)
    assert not wrong.holds and "unknown measure" in wrong.text
