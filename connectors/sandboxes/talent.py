"""Registry of the recruitment, training and performance sandboxes (merged into ``SANDBOXES``)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from connectors.sandboxes import (
    adp,
    cornerstone,
    culture_amp,
    fifteen_five,
    lattice,
    linkedin_talent,
    moodle,
    reed,
    small_improvements,
    successfactors,
    talentlms,
    workday,
)
from connectors.sandboxes.common import SandboxConfig

TALENT_SANDBOXES: dict[str, Callable[[SandboxConfig], FastAPI]] = {
    "linkedin_talent": linkedin_talent.create_app,
    "reed": reed.create_app,
    "talentlms": talentlms.create_app,
    "moodle": moodle.create_app,
    "cornerstone": cornerstone.create_app,
    "successfactors": successfactors.create_app,
    "workday": workday.create_app,
    "adp": adp.create_app,
    "lattice": lattice.create_app,
    "fifteen_five": fifteen_five.create_app,
    "culture_amp": culture_amp.create_app,
    "small_improvements": small_improvements.create_app,
}
