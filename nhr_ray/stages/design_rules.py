"""The design prompt's rules, checked on the designer's answer (after each instruction is cleaned and
labelled). Each violation is counted as `rule_violation:<rule>` in the design tally's notes and
repaired where a repair keeps the scene honest; a scene left with nothing to edit is dropped.

removal (prompts/design_removal.md):
- removal_only: an object line that is not a removal is dropped (the task is removal data).
- one_per_object: a second line on an object already edited is dropped (deletions are independent).
- at_most_5_objects: object lines past the fifth are dropped (the scene names 1-5 objects).
- composite_not_last: the "remove all of them" line is moved to the end.
- extra_composite: a second composite line is dropped (the last one stays).
- composite_with_one_object: a composite line in a one-object scene is dropped (it repeats the one).
- composite_missing: 2+ objects and no composite line: counted, kept (we do not write the designer's
  line for it).
mixed, colour_change, replacement: one_per_object only (at most one instruction per named object).
"""

from __future__ import annotations

from collections import Counter

from nhr_ray.stages.targets import is_composite, same_object

MAX_OBJECTS = 5


def _one_per_object(lines: list[tuple[str, str]], notes: Counter) -> list[tuple[str, str]]:
    kept: list[tuple[str, str]] = []
    for text, cat in lines:
        if any(same_object(text, k) for k, _ in kept):
            notes["rule_violation:one_per_object"] += 1
        else:
            kept.append((text, cat))
    return kept


def _removal(lines: list[tuple[str, str]], notes: Counter) -> list[tuple[str, str]]:
    objects = [(t, c) for t, c in lines if not is_composite(t)]
    composites = [(t, c) for t, c in lines if is_composite(t)]
    if composites and not is_composite(lines[-1][0]):
        notes["rule_violation:composite_not_last"] += 1
    if len(composites) > 1:
        notes["rule_violation:extra_composite"] += len(composites) - 1
        composites = composites[-1:]
    for t, c in objects:
        if c != "removal":
            notes["rule_violation:removal_only"] += 1
    objects = _one_per_object([(t, c) for t, c in objects if c == "removal"], notes)
    if len(objects) > MAX_OBJECTS:
        notes["rule_violation:at_most_5_objects"] += len(objects) - MAX_OBJECTS
        objects = objects[:MAX_OBJECTS]
    if composites and len(objects) < 2:
        notes["rule_violation:composite_with_one_object"] += 1
        composites = []
    if not composites and len(objects) >= 2:
        notes["rule_violation:composite_missing"] += 1
    return objects + composites


def apply_rules(lines: list[tuple[str, str]], operation: str, notes: Counter) -> list[tuple[str, str]]:
    """lines: (instruction, category) in the designer's order -> the lines kept, in order."""
    if not lines:
        return lines
    if operation == "removal":
        return _removal(lines, notes)
    if operation in ("mixed", "colour_change", "replacement"):
        return _one_per_object(lines, notes)
    return lines
