"""SIMULATION. A procedural world whose scenes, images, edits and judges obey known statistics.

This is not a model: it is a calibrated stand-in that lets the whole pipeline run on a laptop, drive
the tests at scale and the benchmarks. Every decision is a function of (run seed, item id) only.

The world speaks a small language. Scene prompts name objects as "<size> <colour> <object>
<position>" phrases; instructions use fixed verbs per category. The simulated T2I model parses the
prompt and really draws the objects (sometimes failing to draw one); the simulated editor parses the
instruction, picks an outcome for the attempt and really changes pixels. The scene travels in the
pixels (tag.py), and the simulated judges judge the images and the instruction they are handed
(perceive.py): what they perceive, never an outcome label, sets the true quality a careful human
would give, and each judge errs around it as the paper's judges err against humans (quality.py),
answering in the text formats real models use.

Calibration (defaults, see SimConfig): a feasible (image, instruction) pair has a true-clean
probability q ~ Beta(mu_c * kappa, (1 - mu_c) * kappa) with mu = 0.85 and kappa = 0.12; a pair whose
target the T2I never drew is hopeless. Through the fallible judges (quality.py) the run's funnel
lands near the paper's Table 3 (tests/test_default_run.py checks every row within 5 points).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from nhr_ray.records import item_rng

OBJECTS: dict[str, str] = {  # name -> shape
    "apple": "circle", "mug": "rect", "lamp": "triangle", "ball": "circle", "book": "rect",
    "vase": "ellipse", "cat": "ellipse", "clock": "circle", "kite": "diamond", "chair": "rect",
    "bottle": "tall", "umbrella": "triangle", "teapot": "ellipse", "cactus": "tall",
    "lantern": "diamond", "hat": "triangle", "pumpkin": "circle", "suitcase": "rect",
    "guitar": "ellipse", "robot": "rect", "owl": "ellipse", "sailboat": "triangle",
}  # fmt: skip
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (214, 40, 40), "blue": (40, 90, 214), "green": (40, 170, 70), "yellow": (240, 210, 40),
    "purple": (140, 60, 190), "orange": (245, 140, 30), "white": (245, 245, 245),
    "black": (25, 25, 25), "pink": (240, 120, 170), "teal": (30, 160, 160),
}  # fmt: skip
SIZES: dict[str, float] = {"small": 0.09, "medium": 0.13, "large": 0.18}  # radius / short side
POSITIONS: dict[str, tuple[float, float]] = {
    "on the left": (0.2, 0.55), "on the right": (0.8, 0.55), "in the centre": (0.5, 0.5),
    "in the upper left corner": (0.2, 0.2), "in the upper right corner": (0.8, 0.2),
    "at the bottom left": (0.22, 0.82), "at the bottom right": (0.78, 0.82),
    "near the top": (0.5, 0.18), "in the foreground": (0.5, 0.82),
}  # fmt: skip
STYLES: dict[str, tuple[float, int, tuple[int, int, int]]] = {  # saturation, posterize levels, tint
    "photograph": (1.0, 0, (0, 0, 0)), "watercolour painting": (0.7, 0, (60, 10, -20)),
    "pixel art picture": (1.1, 6, (-20, 60, 0)), "ink sketch": (0.15, 4, (0, 0, 60)),
    "3D render": (1.0, 12, (-60, -30, 30)), "oil painting": (0.85, 8, (40, -50, -40)),
}
SETTINGS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "a wooden table": ((196, 160, 120), (120, 84, 50)),
    "a sunny meadow": ((150, 200, 245), (90, 160, 70)),
    "a tiled kitchen": ((225, 225, 215), (170, 170, 160)),
    "a quiet city street": ((170, 180, 195), (90, 90, 95)),
    "a sandy beach": ((140, 200, 240), (230, 210, 160)),
    "a snowy garden": ((210, 220, 235), (245, 245, 250)),
}
LIGHTS = ["soft morning", "warm evening", "cool overcast", "bright midday", "dim candle"]
CATEGORY_CYCLE = ["removal", "colour_change", "replacement"]

_OBJ = "|".join(map(re.escape, OBJECTS))
_COL = "|".join(map(re.escape, COLOURS))
_SIZ = "|".join(SIZES)
_POS = "|".join(map(re.escape, POSITIONS))
_STY = "|".join(map(re.escape, STYLES))
PHRASE = re.compile(rf"\b({_SIZ}) ({_COL}) ({_OBJ}) ({_POS})")
STYLE_RE = re.compile(rf"\b({_STY})\b")
SETTING_RE = re.compile("|".join(map(re.escape, SETTINGS)))

# instruction grammar: category -> regex (groups in a fixed order per category); the designer also
# writes casual phrasings ("No red mug on the left, thanks.", "Let's have the mug on the right in teal.")
INSTR = {
    "removal_all": re.compile(r"^remove all (?:of )?the objects", re.I),
    "removal": re.compile(rf"^(?:remove the|lose the|get rid of the|could you take away the|no) ({_COL}) ({_OBJ}) ({_POS})", re.I),
    "addition": re.compile(rf"^(?:add|place|put) an? ({_SIZ}) ({_COL}) ({_OBJ}) ({_POS})", re.I),
    "colour_change": re.compile(rf"^(?:make|let's have) the ({_OBJ}) ({_POS}) (?:in )?({_COL})", re.I),
    "replacement": re.compile(rf"^(?:replace|swap) the ({_COL}) ({_OBJ}) ({_POS}) (?:with|for) an? (?:(?:{_SIZ}) )?({_COL}) ({_OBJ})", re.I),
    "style": re.compile(rf"^turn the whole picture into an? ({_STY})", re.I),
}

# --- calibration tables: how the editor fails, and how often the gate passes what it sees --------
# (the score judges' error models are in quality.py)
FAILURE_MODES: dict[str, dict[str, float]] = {  # category -> failure mode weights
    "removal": {"partial": .25, "wrong_object": .15, "collateral_drift": .25, "no_change": .15, "scattered_noise": .12, "off_size": .08},
    "addition": {"partial": .25, "wrong_object": .10, "collateral_drift": .30, "no_change": .15, "scattered_noise": .12, "off_size": .08},
    "colour_change": {"partial": .30, "wrong_object": .15, "collateral_drift": .20, "no_change": .15, "scattered_noise": .12, "off_size": .08},
    "replacement": {"partial": .25, "wrong_object": .15, "collateral_drift": .25, "no_change": .15, "scattered_noise": .12, "off_size": .08},
    "style": {"partial": .30, "wrong_object": .0, "collateral_drift": .35, "no_change": .15, "scattered_noise": .12, "off_size": .08},
}  # fmt: skip
GATE_PASS = {"clean": .90, "missing": .45, "implausible": .06}


@dataclass
class Obj:
    size: str
    colour: str
    name: str
    position: str

    def phrase(self) -> str:
        return f"{self.size} {self.colour} {self.name} {self.position}"


def parse_objects(prompt: str) -> list[Obj]:
    seen, out = set(), []
    for m in PHRASE.finditer(prompt):
        o = Obj(*m.groups())
        if o.position not in seen:  # one object per position
            seen.add(o.position)
            out.append(o)
    return out


def parse_style(prompt: str) -> str:
    m = STYLE_RE.search(prompt)
    return m.group(1) if m else "photograph"


def parse_setting(prompt: str) -> str:
    m = SETTING_RE.search(prompt)
    return m.group(0) if m else "a wooden table"


def parse_instruction(text: str) -> tuple[str, tuple[str, ...]] | None:
    t = " ".join(text.split())
    for cat, rx in INSTR.items():
        m = rx.search(t)
        if m:
            return cat, m.groups()
    return None


# An image is either harder or easier to edit for every instruction on it (x0.65 or x1.35 on mu):
# successes cluster by image as well as by pair, which sets how many images have two or more kept
# edits, i.e. the composition row of the funnel.
SOURCE_EASE = (0.65, 1.35)


def beta_pair_q(run_seed: int, pair: str, category: str, mean: float, kappa: float, mult: dict[str, float]) -> float:
    source = pair.rpartition(".i")[0]
    ease = SOURCE_EASE[int(item_rng(run_seed, source, "source_ease").integers(0, 2))]
    mu = float(np.clip(mean * mult.get(category, 1.0) * ease, 1e-3, 0.95))
    return float(item_rng(run_seed, pair, "pair_q").beta(mu * kappa, (1 - mu) * kappa))


def draw_outcome(run_seed: int, attempt: str, q: float, category: str) -> str:
    rng = item_rng(run_seed, attempt, "outcome")
    if rng.random() < q:
        return "clean"
    modes = FAILURE_MODES.get(category, FAILURE_MODES["removal"])
    names = [m for m, w in modes.items() if w > 0]
    w = np.array([modes[m] for m in names])
    return str(rng.choice(names, p=w / w.sum()))


def chance(run_seed: int, item: str, purpose: str, p: float) -> bool:
    return bool(item_rng(run_seed, item, purpose).random() < p)
