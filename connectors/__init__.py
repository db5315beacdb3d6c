"""CareHub package."""
