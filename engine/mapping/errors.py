"""Errors raised while compiling or running a mapping design."""

from __future__ import annotations


class MappingError(ValueError):
    """A design (or one of its expressions or templates) cannot be compiled or safely run.

    The message is plain English and names the field at fault, so the designer can show it as is.
    """


class StepError(ValueError):
    """A transformation step could not convert one value; becomes a per-field error, not a crash."""
