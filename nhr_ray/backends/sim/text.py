"""SIMULATION. The LLM roles: a scene designer writing the world's language as JSON text (with the
malformations real LLMs produce), and an inverter writing inverse instructions."""

from __future__ import annotations

import json
import re

import numpy as np

from nhr_ray.backends.sim import world as W
from nhr_ray.records import item_rng
from nhr_ray.backends.sim_options import SimTextOptions
from nhr_ray.roles import Answer, TextModel, TextRequest

_COUNT = re.compile(r"exactly (\d+) items")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def design_scene(rng: np.random.Generator, n_objects: int, operation: str, voice: np.random.Generator) -> dict:
    """One scene: its prompt and (instruction, category) pairs. `voice` draws the wording only."""
    positions = rng.choice(list(W.POSITIONS), size=n_objects, replace=False)
    objs = [
        W.Obj(str(rng.choice(list(W.SIZES))), str(rng.choice(list(W.COLOURS))), str(rng.choice(list(W.OBJECTS))), str(p))
        for p in positions
    ]
    style = str(rng.choice(list(W.STYLES)))
    setting = str(rng.choice(list(W.SETTINGS)))
    phrases = [f"{_article(o.size)} {o.phrase()}" for o in objs]
    listing = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    view = str(rng.choice(["seen at eye level", "seen from slightly above", "in a wide shot", "in a close-up"]))
    prompt = (
        f"{_article(style).capitalize()} {style} of {setting}, {view}. In the scene there is {listing}. "
        f"{str(rng.choice(W.LIGHTS)).capitalize()} light, calm mood."
    )
    edits: list[tuple[str, str]] = []  # (instruction, category)
    free = [p for p in W.POSITIONS if p not in positions]
    for j, o in enumerate(objs):
        cat = operation if operation != "mixed" else W.CATEGORY_CYCLE[int(rng.integers(0, 3))]
        casual = bool(voice.random() < CASUAL_SHARE)
        if cat == "removal":
            edits.append((casual_removal(voice, o) if casual else f"Remove the {o.colour} {o.name} {o.position}.", cat))
        elif cat == "colour_change":
            new = str(rng.choice([c for c in W.COLOURS if c != o.colour]))
            edits.append((f"Let's have the {o.name} {o.position} in {new}." if casual else f"Make the {o.name} {o.position} {new}.", cat))
        elif cat == "replacement":
            new_o = str(rng.choice([x for x in W.OBJECTS if x != o.name]))
            new_c = str(rng.choice(list(W.COLOURS)))
            verb, join = ("Swap", "for") if casual else ("Replace", "with")
            edits.append((f"{verb} the {o.colour} {o.name} {o.position} {join} {_article(new_c)} {new_c} {new_o}.", cat))
    if operation == "removal" and n_objects >= 2:
        edits.append(("Remove all the objects.", "removal"))
    if (operation == "mixed" and rng.random() < 0.5) or operation == "addition":
        for p in free[: 1 if operation == "mixed" else int(rng.integers(1, 3))]:
            s, c, o = str(rng.choice(list(W.SIZES))), str(rng.choice(list(W.COLOURS))), str(rng.choice(list(W.OBJECTS)))
            edits.append((f"Add {_article(s)} {s} {c} {o} {p}.", "addition"))
    if (operation == "mixed" and rng.random() < 0.3) or operation == "style":
        new_style = str(rng.choice([s for s in W.STYLES if s != style]))
        edits.append((f"Turn the whole picture into {_article(new_style)} {new_style}.", "style"))
    return {"prompt": prompt, "edits": edits}


CASUAL_SHARE = 0.3  # share of instructions the simulated designer words casually
_CASUAL_REMOVAL = ["Lose the {c} {o} {p}.", "No {c} {o} {p}, thanks.", "Get rid of the {c} {o} {p}.",
                   "Could you take away the {c} {o} {p}?"]  # fmt: skip


def casual_removal(voice: np.random.Generator, o: W.Obj) -> str:
    return _CASUAL_REMOVAL[int(voice.integers(0, len(_CASUAL_REMOVAL)))].format(c=o.colour, o=o.name, p=o.position)


def as_json_item(item: dict, labelled: bool, voice: np.random.Generator, rate: float) -> dict:
    """The item as the designer writes it: labelled edits when the prompt asks for labels (a label
    left out or misspelt now and then, as real LLMs do), plain strings otherwise."""
    if not labelled:
        return {"prompt": item["prompt"], "edits": [t for t, _ in item["edits"]]}
    edits = []
    for t, cat in item["edits"]:
        roll = voice.random()
        if roll < rate:
            edits.append({"instruction": t})
        elif roll < 2 * rate:
            edits.append({"instruction": t, "category": "deletion-ish"})
        else:
            edits.append({"instruction": t, "category": cat})
    return {"prompt": item["prompt"], "edits": edits}


def _malform_item(item: dict, rng: np.random.Generator) -> dict:
    kind = int(rng.integers(0, 5))
    if kind == 0:
        return {"prompt": item["prompt"]}  # missing edits
    first = item["edits"][0]
    text = first["instruction"] if isinstance(first, dict) else first
    if kind == 1:
        return {"prompt": item["prompt"], "edits": text}  # a string, not a list
    if kind == 2:  # braces, quotes and a newline inside an instruction: must survive intact
        edits = list(item["edits"])
        text = text.rstrip(".") + ' {gently}, keeping the "mood"\nas it is.'
        edits[0] = {**first, "instruction": text} if isinstance(first, dict) else text
        return {"prompt": item["prompt"], "edits": edits}
    if kind == 3:
        return {"edits": item["edits"]}  # missing prompt
    return {"prompt": "", "edits": item["edits"]}


class SimText(TextModel):
    Options = SimTextOptions

    def complete(self, requests: list[TextRequest]) -> list[Answer]:
        return [self._design(r) if r.task.startswith("design") else self._invert(r) for r in requests]

    def _design(self, r: TextRequest) -> Answer:
        seed, rate = self.context.run_seed, self.context.sim.malformed_rate
        rng = item_rng(seed, r.item_id, "design")
        operation = r.task.partition(":")[2] or "mixed"
        m = _COUNT.search(r.prompt)
        count = int(m.group(1)) if m else 10
        sizes = [1 + i % 5 for i in range(count)]  # the prompt asks for equal numbers of 1..5
        rng.shuffle(sizes)
        voice = item_rng(seed, r.item_id, "design_voice")
        labelled = '"category"' in r.prompt  # label only when the prompt asks for labels
        items = [as_json_item(design_scene(rng, n, operation, voice), labelled, voice, rate) for n in sizes]
        items = [_malform_item(it, rng) if rng.random() < rate * 2 else it for it in items]
        text = json.dumps(items, indent=1)
        roll = rng.random()
        if roll < rate:
            text = "I'm sorry, but I can only provide a few examples right now."
        elif roll < 2 * rate:
            text = text[: len(text) * 3 // 5]  # cut off mid-answer
        elif roll < 0.15:
            text = f"Here are the scenes you asked for:\n```json\n{text}\n```\nLet me know if you need more."
        return Answer(text=text, usage={"api_calls": 1, "output_tokens": len(text) // 4})

    def _invert(self, r: TextRequest) -> Answer:
        seed, rate = self.context.run_seed, self.context.sim.malformed_rate
        rng = item_rng(seed, r.item_id, "invert")
        scene = re.search(r"^Scene: (.*)$", r.prompt, re.M)
        instr = re.search(r"^Instruction: (.*)$", r.prompt, re.M)
        prompt, instruction = (scene.group(1) if scene else ""), (instr.group(1) if instr else "")
        if rng.random() < rate:
            text = str(rng.choice(["Undo the previous edit.", "", "Put it back the way it was.",
                                   "Sure! Here is the instruction:\n\nAdd the object.\n\nHope this helps."]))  # fmt: skip
        else:
            text = invert_instruction(prompt, instruction)
        return Answer(text=text, usage={"api_calls": 1, "output_tokens": len(text) // 4})


def invert_instruction(prompt: str, instruction: str) -> str:
    objs = {(o.colour, o.name, o.position): o for o in W.parse_objects(prompt)}
    parsed = W.parse_instruction(instruction)
    if parsed is None:
        return f"Make the picture match this description: {prompt[:200]}"
    cat, g = parsed
    if cat == "removal":
        o = objs.get(g[:3])
        size = f"{o.size} " if o else ""
        return f"Place {_article(size or g[0])} {size}{g[0]} {g[1]} {g[2]}."
    if cat == "removal_all":
        parts = [f"{_article(o.size)} {o.phrase()}" for o in objs.values()]
        return "Add " + " and ".join(parts) + "." if parts else "Add the objects described in the scene."
    if cat == "addition":
        return f"Remove the {g[1]} {g[2]} {g[3]}."
    if cat == "colour_change":
        old = next((o.colour for (c, n, p), o in objs.items() if n == g[0] and p == g[1]), None)
        return f"Make the {g[0]} {g[1]} {old}." if old else f"Give the {g[0]} {g[1]} its earlier colour."
    if cat == "replacement":
        o = objs.get(g[:3])
        size = f"{o.size} " if o else ""
        return f"Replace the {g[3]} {g[4]} {g[2]} with {_article(size or g[0])} {size}{g[0]} {g[1]}."
    style = W.parse_style(prompt)
    return f"Turn the whole picture into {_article(style)} {style}."
