"""Fuzzy matching of people (residents, staff) on name, date of birth and NHS/NI number.

A score in [0, 1] says how sure we are that two records describe the same person. Scores at or above
:data:`AUTO_MATCH` (reachable only when an NHS or NI number agrees) are treated as the same person; scores between :data:`REVIEW` and ``AUTO_MATCH`` are
shown to a person to confirm; lower scores mean a new record.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from difflib import SequenceMatcher
from typing import Any

AUTO_MATCH = 0.92
REVIEW = 0.70
_NHS_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)
_SPACE = re.compile(r"[\s\-]")
_NOT_LETTER = re.compile(r"[^a-z ]")
_NI = re.compile(r"^[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]$")
NICKNAMES = {
    "bill": "william", "billy": "william", "will": "william", "bob": "robert", "rob": "robert",
    "bobby": "robert", "peggy": "margaret", "maggie": "margaret", "meg": "margaret", "liz": "elizabeth",
    "beth": "elizabeth", "betty": "elizabeth", "lizzie": "elizabeth", "jim": "james", "jimmy": "james",
    "jack": "john", "johnny": "john", "kate": "katherine", "kath": "katherine", "cathy": "catherine",
    "dot": "dorothy", "dolly": "dorothy", "ted": "edward", "eddie": "edward", "ed": "edward",
    "harry": "henry", "tom": "thomas", "tommy": "thomas", "dick": "richard", "rich": "richard",
    "sue": "susan", "susie": "susan", "pat": "patricia", "trish": "patricia", "fred": "frederick",
    "alf": "alfred", "bert": "albert", "joe": "joseph", "dave": "david", "mike": "michael",
    "chris": "christopher", "steve": "stephen", "sam": "samuel", "annie": "ann", "anne": "ann",
    "jenny": "jennifer", "jen": "jennifer", "vi": "violet", "wendy": "gwendoline", "reg": "reginald",
}


def normalise_nhs(value: Any) -> str | None:
    """Ten digits with a valid modulus 11 check digit, or None."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    digits = _SPACE.sub("", str(value))
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return None
    check = 11 - sum(int(d) * w for d, w in zip(digits[:9], _NHS_WEIGHTS, strict=True)) % 11
    check = 0 if check == 11 else check
    return digits if check != 10 and check == int(digits[9]) else None


def normalise_ni(value: Any) -> str | None:
    """A National Insurance number in HMRC's format (``AB123456C``), or None."""
    if not isinstance(value, str):
        return None
    compact = value.replace(" ", "").upper()
    return compact if _NI.match(compact) else None


def parse_date(value: Any) -> date | None:
    """An ISO date (``YYYY-MM-DD``) or a UK date (``DD/MM/YYYY``), else None."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text)
        found = re.fullmatch(r"(\d{1,2})[/.](\d{1,2})[/.](\d{4})", text)
        if found:
            return date(int(found[3]), int(found[2]), int(found[1]))
    except ValueError:
        return None
    return None


def normalise_name(value: Any) -> str:
    """Lower case, accents and punctuation removed, nicknames expanded: ``"Peggy O'Neil"`` -> ``margaret oneil``."""
    if not isinstance(value, str):
        return ""
    text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode().lower()
    text = _NOT_LETTER.sub("", text.replace("-", " "))
    return " ".join(NICKNAMES.get(part, part) for part in text.split())


@dataclass(frozen=True, slots=True)
class Person:
    """The identifying parts of a record, already normalised."""

    key: str
    given: str
    family: str
    birth_date: date | None
    nhs_number: str | None
    ni_number: str | None

    @property
    def full_name(self) -> str:
        """Given and family name, normalised."""
        return f"{self.given} {self.family}".strip()


def person_from(key: str, record: Mapping[str, Any]) -> Person:
    """Read a care-type record (``givenName``, ``familyName``, ``dateOfBirth``, ``nhsNumber``, ``niNumber``)."""
    return Person(key=key, given=normalise_name(record.get("givenName")),
                  family=normalise_name(record.get("familyName")),
                  birth_date=parse_date(record.get("dateOfBirth")),
                  nhs_number=normalise_nhs(record.get("nhsNumber")),
                  ni_number=normalise_ni(record.get("niNumber")))


@dataclass(frozen=True, slots=True)
class MatchScore:
    """How alike two people are, with the reasons in plain English."""

    score: float
    reasons: tuple[str, ...] = ()

    @property
    def band(self) -> str:
        """``match``, ``possible`` (a person confirms) or ``new``."""
        if self.score >= AUTO_MATCH:
            return "match"
        return "possible" if self.score >= REVIEW else "new"


def _similar(a: str, b: str) -> float:
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    sorted_a, sorted_b = " ".join(sorted(a.split())), " ".join(sorted(b.split()))
    # difflib's ratio depends on argument order; take both ways so a score never does
    return max(SequenceMatcher(None, x, y).ratio()
               for x, y in ((a, b), (b, a), (sorted_a, sorted_b), (sorted_b, sorted_a)))


def _date_score(a: date | None, b: date | None) -> tuple[float | None, str]:
    if a is None or b is None:
        return None, ""
    if a == b:
        return 1.0, "same date of birth"
    if a.year == b.year and a.month == b.day and a.day == b.month:
        return 0.7, "date of birth with day and month swapped"
    differences = sum(x != y for x, y in ((a.year, b.year), (a.month, b.month), (a.day, b.day)))
    if differences == 1:
        return 0.5, "date of birth differs in one part"
    return 0.0, "different date of birth"


def score_pair(a: Person, b: Person) -> MatchScore:
    """Score two people; an identifier that differs caps the score below a possible match."""
    reasons: list[str] = []
    parts: list[tuple[float, float]] = []  # (weight, score)
    capped = False
    for label, x, y in (("NHS number", a.nhs_number, b.nhs_number), ("NI number", a.ni_number, b.ni_number)):
        if x and y:
            if x == y:
                parts.append((0.5, 1.0))
                reasons.append(f"same {label}")
            else:
                parts.append((0.5, 0.0))
                reasons.append(f"different {label}")
                capped = True
            break
    family = _similar(a.family, b.family)
    given = _similar(a.given, b.given)
    if a.given and b.given and (a.given.split()[0] == b.given.split()[0]):
        given = 1.0
    name = max(0.6 * family + 0.4 * given, _similar(a.full_name, b.full_name) * 0.95)
    id_weight = parts[0][0] if parts else 0.0
    rest = 1.0 - id_weight
    date_score, date_reason = _date_score(a.birth_date, b.birth_date)
    if date_score is None:
        parts.append((rest, name))
    else:
        parts.append((rest * 0.55, name))
        parts.append((rest * 0.45, date_score))
        reasons.append(date_reason)
    if name >= 0.999:
        reasons.append("same name")
    elif name >= 0.8:
        reasons.append("similar name")
    else:
        reasons.append("different name")
    total = sum(w * s for w, s in parts) / sum(w for w, _ in parts)
    if capped:
        total = min(total, REVIEW - 0.01)
    elif id_weight == 0.0:
        total = min(total, AUTO_MATCH - 0.02)  # without an agreeing identifier a person confirms
    return MatchScore(round(total, 4), tuple(r for r in reasons if r))


def _blocks(person: Person) -> set[str]:
    keys = {f"f:{person.family[:3]}"} if person.family else set()
    if person.nhs_number:
        keys.add(f"n:{person.nhs_number}")
    if person.ni_number:
        keys.add(f"i:{person.ni_number}")
    if person.birth_date:
        keys.add(f"d:{person.birth_date.isoformat()}")
        keys.add(f"y:{person.birth_date.year}:{person.given[:1]}")
    return keys


@dataclass(frozen=True, slots=True)
class Candidate:
    """The best existing record for an incoming one, with its score."""

    incoming: str
    existing: str | None
    score: MatchScore
    runner_up: float = 0.0

    @property
    def band(self) -> str:
        """``match``, ``possible`` or ``new``; two near-equal candidates always need a person."""
        if self.existing is None:
            return "new"
        band = self.score.band
        if band == "match" and self.runner_up >= REVIEW and self.score.score - self.runner_up < 0.05:
            return "possible"
        return band


@dataclass
class _Index:
    people: dict[str, Person] = field(default_factory=dict)
    blocks: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, person: Person) -> None:
        self.people[person.key] = person
        for block in _blocks(person):
            self.blocks[block].append(person.key)

    def candidates(self, person: Person) -> set[str]:
        found: set[str] = set()
        for block in _blocks(person):
            found.update(self.blocks.get(block, ()))
        found.discard(person.key)
        return found


def match_all(incoming: Iterable[Person], existing: Iterable[Person]) -> list[Candidate]:
    """For each incoming person, the best-scoring existing person (blocking keeps this near linear)."""
    index = _Index()
    for person in existing:
        index.add(person)
    results: list[Candidate] = []
    for person in incoming:
        scored = sorted(((score_pair(person, index.people[key]), key) for key in index.candidates(person)),
                        key=lambda item: (-item[0].score, item[1]))
        if not scored or scored[0][0].score < REVIEW:
            best = scored[0][0] if scored else MatchScore(0.0, ("no similar record",))
            results.append(Candidate(person.key, None, best))
            continue
        runner_up = scored[1][0].score if len(scored) > 1 else 0.0
        results.append(Candidate(person.key, scored[0][1], scored[0][0], runner_up))
    return results


def find_duplicates(people: Sequence[Person], threshold: float = 0.85) -> list[list[str]]:
    """Groups of keys that probably describe the same person within one data set."""
    index = _Index()
    for person in people:
        index.add(person)
    parent: dict[str, str] = {p.key: p.key for p in people}

    def root(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for person in people:
        for other in index.candidates(person):
            if other > person.key and score_pair(person, index.people[other]).score >= threshold:
                parent[root(other)] = root(person.key)
    groups: dict[str, list[str]] = defaultdict(list)
    for person in people:
        groups[root(person.key)].append(person.key)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])
