"""What an instruction edits, read from its words: shared by the design rules (one instruction per
object, the composite line) and composition (skip pairs on the same object). Plain text heuristics
over untrusted text; nothing here raises."""

from __future__ import annotations

import re

# the designer's composite "remove all of them" line
_COMPOSITE = re.compile(r"\b(?:all|both|each|every)\b(?: of)? (?:the|these|those|them)\b|\beverything\b|\bthem all\b", re.I)
# words that say how to edit, not what: verbs, function words, colours, sizes, politeness
_NOT_OBJECT = set("""a an the this that these those it its them they of on in at to into onto from by with without and or
then but so for as near next beside behind under over above below up down out away off rid no not any
remove delete erase lose drop take get cut clear ditch eliminate add place put insert draw introduce make turn paint
colour color recolour recolor dye change replace swap substitute exchange switch give set move please thanks thank you
just let us lets can could would should will is are be bit little some more have
red orange yellow green blue purple pink brown black white grey gray teal gold golden silver beige navy cream
small medium large big tiny huge tall short""".split())  # fmt: skip


def is_composite(instruction: str) -> bool:
    """The "remove all of them" line a removal scene ends with."""
    return bool(_COMPOSITE.search(instruction))


# a run of these is one place ("upper left corner" is not "left")
_SPATIAL = set("upper lower top bottom left right far centre center middle corner front back foreground background edge side".split())


def object_words(instruction: str) -> frozenset[str]:
    """The words of an instruction that name what it edits (object, its place and qualities); a run
    of spatial words counts as one word, so "the mug on the left" and "the mug at the bottom left"
    name different mugs."""
    out: list[str] = []
    prev_spatial = False
    for w in re.findall(r"[a-z0-9]+", instruction.lower()):
        if w in _NOT_OBJECT or (len(w) < 2 and not w.isdigit()):
            prev_spatial = False
            continue
        spatial = w in _SPATIAL
        if spatial and prev_spatial:
            out[-1] += "_" + w
        else:
            out.append(w)
        prev_spatial = spatial
    return frozenset(out)


def same_object(a: str, b: str) -> bool:
    """Two instructions name the same thing: one's object words contain the other's."""
    x, y = object_words(a), object_words(b)
    return bool(x and y and (x <= y or y <= x))
