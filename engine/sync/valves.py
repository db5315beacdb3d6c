"""Safety valves: a run that reads nothing where earlier runs read many, or that would change or
delete more than a set share of the records, pauses for approval instead of succeeding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MIN_USUAL_READ = 10  # "many": a median full read at least this large makes an empty read suspicious
MIN_POPULATION = 10  # below this many stored records the change share is not meaningful


@dataclass(frozen=True)
class ValveTrip:
    """Why a run paused, in words for the approval screen."""

    kind: str  # "empty_read" | "mass_change" | "mass_delete"
    message: str
    observed: int
    limit: int


def empty_read(read: int, previous_reads: Sequence[int], *, enabled: bool = True) -> ValveTrip | None:
    """Trip when a full read returned nothing but the median of the previous full reads was many."""
    if not enabled or read > 0 or not previous_reads:
        return None
    usual = sorted(previous_reads)[len(previous_reads) // 2]
    if usual < MIN_USUAL_READ:
        return None
    return ValveTrip("empty_read", f"The vendor returned no records, where recent runs read about {usual}. "
                                   "Check the connection before approving.", 0, usual)


def change_limit(population: int, max_share: float) -> int | None:
    """How many changes (updates plus deletes) a run may make before it pauses (None: no limit)."""
    if population < MIN_POPULATION or max_share >= 1.0:
        return None
    return max(1, int(population * max_share))


def mass_change(changes: int, population: int, max_share: float, *, kind: str = "mass_change") -> ValveTrip | None:
    """Trip when ``changes`` exceeds ``max_share`` of the ``population`` of stored records."""
    limit = change_limit(population, max_share)
    if limit is None or changes <= limit:
        return None
    what = "delete" if kind == "mass_delete" else "change"
    return ValveTrip(kind, f"This run would {what} {changes} of {population} records, more than the "
                           f"{max_share:.0%} allowed without approval.", changes, limit)
