"""Operation modes and ownership rules, each explained in one plain sentence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WCN = "WriteCareNotes"


@dataclass(frozen=True, slots=True)
class ModePreset:
    """What an operation mode means and the ownership it suggests for every data type."""

    label: str
    sentence: str
    primary: str  # "writecarenotes" | "external"
    direction: str
    permissions: tuple[str, ...]
    conflict: str


MODES: dict[str, ModePreset] = {
    "full_writecarenotes": ModePreset(
        "WriteCareNotes only", "Everything is kept in WriteCareNotes; {system} only receives copies.",
        "writecarenotes", "outbound", ("writecarenotes",), "primary_wins"),
    "hybrid_writecarenotes_primary": ModePreset(
        "Both, WriteCareNotes leads", "Both systems are used; when they disagree WriteCareNotes is right.",
        "writecarenotes", "bidirectional", ("writecarenotes", "external"), "primary_wins"),
    "hybrid_equal": ModePreset(
        "Both, as equals", "Both systems are used equally; the most recent change wins.",
        "external", "bidirectional", ("writecarenotes", "external"), "last_write_wins"),
    "hybrid_external_primary": ModePreset(
        "Both, {system} leads", "Both systems are used; when they disagree {system} is right.",
        "external", "bidirectional", ("writecarenotes", "external"), "primary_wins"),
    "external_primary": ModePreset(
        "{system} only", "Everything is kept in {system}; WriteCareNotes only receives copies.",
        "external", "inbound", ("external",), "primary_wins"),
}

DIRECTIONS: dict[str, str] = {
    "inbound": "Into WriteCareNotes",
    "outbound": "Out to {system}",
    "bidirectional": "Both ways",
}

CONFLICTS: dict[str, str] = {
    "primary_wins": "The main system wins",
    "last_write_wins": "The latest change wins",
    "field_level": "Each field has its own owner",
    "manual_review": "Ask a person to decide",
}

SYSTEMS: dict[str, str] = {"writecarenotes": WCN, "external": "{system}"}


def fill(text: str, system: str) -> str:
    """Put the external system's name into a template sentence."""
    return text.replace("{system}", system)


def rule_sentence(care_type: str, system: str, primary: str, direction: str, permissions: Sequence[str],
                  conflict: str) -> str:
    """One sentence a manager can check, e.g. "Invoices live in Xero and are copied into WriteCareNotes; ..."."""
    owner = WCN if primary == "writecarenotes" else system
    other = system if primary == "writecarenotes" else WCN
    flow = {"inbound": f"copied from {system} into {WCN}",
            "outbound": f"copied from {WCN} out to {system}",
            "bidirectional": f"kept in step both ways between {WCN} and {system}"}.get(direction, direction)
    who = [WCN if p == "writecarenotes" else system for p in permissions]
    may = (" and ".join(who) + " may change them") if who else \
        "nobody may change them through the sync"
    settle = {"primary_wins": f"if both change the same record, {owner} wins",
              "last_write_wins": "if both change the same record, the latest change wins",
              "field_level": "if both change the same record, each field keeps its own owner's value",
              "manual_review": "if both change the same record, it waits in the errors list for a person to decide",
              }.get(conflict, conflict)
    return (f"{care_type} records belong to {owner} ({other} holds a copy); they are {flow}; {may}; {settle}.")


def schedule_sentence(frequency: dict[str, object]) -> str:
    """``{"kind": "daily", "at": "02:00"}`` -> "Runs every day at 02:00"."""
    kind = str(frequency.get("kind") or "manual")
    if kind == "minutes":
        return f"Runs every {frequency.get('every', 15)} minutes"
    if kind == "hourly":
        return "Runs every hour"
    if kind == "daily":
        return f"Runs every day at {frequency.get('at', '02:00')}"
    if kind == "cron":
        return f"Runs on the schedule {frequency.get('cron', '')}"
    return "Runs only when someone presses Sync now"
