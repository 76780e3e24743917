"""The instruction categories of the method (SPEC.md stage 1): one list, used by the config, the
scheduler's policies, the photo reader and the dataset card."""

from __future__ import annotations

CATEGORIES = ["removal", "addition", "colour_change", "replacement", "style"]
KNOWN_CATEGORIES = (*CATEGORIES, "other")  # what an instruction can be labelled (design.classify_instruction)


def check_categories(names) -> None:
    """A map keyed by instruction category may name only known categories."""
    bad = sorted(set(names) - set(CATEGORIES))
    if bad:
        raise ValueError(f"unknown categories {bad}; known: {CATEGORIES}")
