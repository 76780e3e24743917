"""SIMULATION backends, one per role kind, listed as `sim` in nhr_ray/backends/__init__.py. See world.py for what they obey.

Costs are virtual: each call reports the GPU-seconds the real model would take on one H100 (SPEC.md's
measured table) for the full-size image, and optionally sleeps that long times `realtime_scale`.
"""

from __future__ import annotations

import json
import time

import numpy as np

from nhr_ray.backends.sim import quality as Q
from nhr_ray.backends.sim import render as R
from nhr_ray.backends.sim import tag
from nhr_ray.backends.sim import world as W
from nhr_ray.backends.sim.gpu import run_time_shared
from nhr_ray.backends.sim.perceive import instruction_in, perceive, specks_alone
from nhr_ray.backends.sim.photo_edit import edit_photo
from nhr_ray.backends.sim.text import SimText
from nhr_ray.records import item_rng, item_seed, stable_hash
from nhr_ray.backends.sim_options import SimEditorOptions, SimJudgeOptions, SimT2IOptions
from nhr_ray.roles import Answer, EditRequest, ImageEditor, ImageGenerator, T2IRequest, VisionJudge, VLMRequest

# SPEC.md, one H100, bf16
T2I_STEP_S, VAE_DECODE_S, EDIT_STEP_S = 0.173, 0.091, 0.376
GATE_CALL_S = 0.380
PREFILTER_S = {"edit_scores": 0.90, "unwanted_change": 0.55, "aesthetics": 0.55}  # 72B, all its GPUs


class _Sim:
    def _full_area_ratio(self, w: int, h: int) -> float:
        scale = self.context.run_config.sources.scale if self.context.run_config else 1.0
        return (w / scale) * (h / scale) / (1024 * 1024)

    def _sleep(self, gpu_seconds: float) -> None:
        sim = self.context.sim
        if sim is not None and sim.realtime_scale > 0:
            # a model over g GPUs runs g times faster; one on a fraction of a GPU shares it: at that
            # fraction's speed ('slice'), or time-sliced with whatever else runs on that GPU
            # ('time_shared', gpu.py). GPU-less actors, as in CPU-only tests, take the one-GPU time.
            g = self.context.num_gpus if self.context.num_gpus > 0 else 1.0
            if sim.gpu_sharing == "time_shared" and g < 1 and self.context.device:
                run_time_shared(self.context.device, gpu_seconds * sim.realtime_scale, efficiency=sim.time_share_efficiency)
            else:
                time.sleep(gpu_seconds / g * sim.realtime_scale)


class SimT2I(_Sim, ImageGenerator):
    Options = SimT2IOptions

    def generate(self, requests: list[T2IRequest]) -> list[Answer]:
        out, total = [], 0.0
        sim, seed = self.context.sim, self.context.run_seed
        for r in requests:
            state = R.scene_state(r.prompt, r.width, r.height)
            for o in state["objects"]:
                key = f"{r.item_id}/{o['position']}"
                if W.chance(seed, key, "missing", sim.missing_object_rate):
                    o["present"] = False
            state["implausible"] = W.chance(seed, r.item_id, "implausible", sim.implausible_rate)
            tex = stable_hash(seed, "texture", r.item_id, bits=31)
            img = tag.write(R.render(state, tex), {"state": state, "texture_seed": tex})  # the scene, in its pixels
            cost = (self.options.steps * T2I_STEP_S + VAE_DECODE_S) * self._full_area_ratio(r.width, r.height)
            total += cost
            out.append(Answer(image=img, gpu_seconds=cost))
        self._sleep(total)
        return out


class SimEditor(_Sim, ImageEditor):
    Options = SimEditorOptions

    def edit(self, requests: list[EditRequest]) -> list[Answer]:
        out, total = [], 0.0
        sim, seed = self.context.sim, self.context.run_seed
        for r in requests:
            h, w = r.image.shape[:2]
            steps = int(item_rng(seed, r.item_id, "steps").integers(self.options.min_steps, self.options.max_steps + 1))
            cost = (steps * EDIT_STEP_S + VAE_DECODE_S + 0.05) * self._full_area_ratio(w, h)
            total += cost
            parsed = W.parse_instruction(r.instruction)
            cat = parsed[0] if parsed else "other"
            cat_key = {"removal_all": "removal", "other": "addition"}.get(cat, cat)
            scene = tag.read(r.image)  # what it knows of the image: what the image carries, nothing else
            target = R.find_target(scene["state"], cat, parsed[1]) if scene and parsed else None
            feasible = scene is None or not (cat in ("removal", "colour_change", "replacement") and target is None)
            if scene and cat == "removal_all":
                feasible = any(o["present"] for o in scene["state"]["objects"])
            pair = r.item_id.rpartition(".m")[0] or r.item_id
            q = W.beta_pair_q(seed, pair, cat_key, sim.pair_success_mean, sim.pair_concentration, sim.category_difficulty) if feasible else 0.0
            outcome = W.draw_outcome(seed, r.item_id, q, cat_key)
            if scene is None:  # a photo: the given pixels, edited where the instruction points
                img = edit_photo(r.image, r.instruction, outcome, item_rng(seed, r.item_id, "pixels"))
            else:
                img, drawn = R.render_outcome(scene["state"], parsed, target, outcome, scene["texture_seed"], seed, r.item_id)
                img = tag.write(img, {"state": drawn, "texture_seed": scene["texture_seed"]})
            out.append(Answer(image=img, gpu_seconds=cost, meta={"steps": steps}))
        self._sleep(total)
        return out


def _yes_no(yes: bool, rng: np.random.Generator) -> str:
    word = "yes" if yes else "no"
    return str(rng.choice([word, word.capitalize(), word.capitalize() + ".", f"**{word.capitalize()}**", word.upper()]))


def _scores_text(adh: float, aes: float, rng: np.random.Generator) -> str:
    body = json.dumps({"adherence": round(adh, 2), "aesthetics": round(aes, 2)})
    return str(rng.choice([body, f"```json\n{body}\n```", f"Scores: {body}"]))


MALFORMED = {
    "yes_no": ["Maybe.", "I cannot tell from these images.", "", "It depends on the lighting"],
    "scores": ['{"adherence": "five", "aesthetics": 4.9}', '{"adherence": 7.5, "aesthetics": 4.8}',
               '{"adherence": NaN, "aesthetics": 4.8}', '{"adherence": 4.', "The edit looks good overall.",
               '{"aesthetics": 4.9}'],
}  # fmt: skip


class SimJudge(_Sim, VisionJudge):
    """Judges what it is handed: the images (their pixels, and the scene a simulated image carries) and
    the instruction it reads in its prompt (perceive.py). What it perceives sets its pass chance
    (world.py's tables, by the kind of outcome it sees), and its answers come in the formats real
    models use, malformed now and then."""

    Options = SimJudgeOptions

    @property
    def identity(self) -> str:
        """Which judge this is: the ensemble judge's name, else its role. Its own errors are drawn under it."""
        return self.context.judge or self.context.role

    def ask(self, requests: list[VLMRequest]) -> list[Answer]:
        out, total = [], 0.0
        seed, sim = self.context.run_seed, self.context.sim
        role, me = self.context.role, self.identity
        seen: dict[tuple, object] = {}  # one look per candidate, however many questions it gets
        for r in requests:
            rng = item_rng(seed, f"{r.item_id}/{me}", r.question)
            cost = self.options.gpu_seconds
            if cost is None:
                cost = 0.0 if role == "validator" else (GATE_CALL_S if role == "gate" else PREFILTER_S.get(r.question, 0.55))
            total += cost
            kind = "scores" if r.question == "edit_scores" else "yes_no"
            if rng.random() < sim.malformed_rate:
                text = str(rng.choice(MALFORMED[kind]))
            elif r.question == "plausibility":
                text = _yes_no(rng.random() < W.GATE_PASS[_plausibility(r.images[0])], rng)
            elif len(r.images) < 2:  # the edited image alone: is it pleasing?
                text = self._judge_alone(r, rng)
            else:
                ins = instruction_in(r.prompt)
                key = (r.item_id, ins, id(r.images[0]), id(r.images[1]))
                if key not in seen:
                    seen[key] = (perceive(r.images[0], r.images[1], ins), Q.latents(r.images[0], r.images[1], ins))
                text = self._judge_edit(r, seen[key], rng)
            out.append(Answer(text=text, gpu_seconds=cost))
        self._sleep(total)
        return out

    def _judge_alone(self, r: VLMRequest, rng: np.random.Generator) -> str:
        """The edited image alone: is it pleasing (aesthetics), or its scores (one image, no instruction)."""
        lat = Q.latents(r.images[0], r.images[0])
        aes = lat.picture - 2.5 * float(Q._sat(max(specks_alone(r.images[0]) - 0.03, 0.0), 0.01)) - lat.finish[1]
        if r.question == "aesthetics":
            return _yes_no(bool(Q.pleasing(aes, rng.standard_normal())), rng)
        return _scores_text(float(Q.on_grid(aes + 0.3 * rng.standard_normal())), float(Q.on_grid(aes)), rng)

    def _judge_edit(self, r: VLMRequest, seen, rng: np.random.Generator) -> str:
        """From what it perceives (perceive.py) and the pair's latents, the truth a careful human would
        give; then this judge's error model (quality.py): the validator errs as the paper's tuned
        validator, the pre-filter as Qwen2.5-VL-72B."""
        p, lat = seen
        role, me = self.context.role, self.identity
        adh, aes = Q.true_quality(p.done, p.outside, p.specks, p.feasible, *lat.finish, lat.picture)
        if r.question == "unwanted_change":
            z = Q.normals(lat.key, f"unwanted/{role}", 1)[0]
            return _yes_no(bool(Q.only_asked_change(p.done, p.outside, p.specks, p.feasible, z)), rng)
        if r.question == "aesthetics":
            return _yes_no(bool(Q.pleasing(aes, rng.standard_normal())), rng)
        j = Q.JUDGES.get(self.options.errs_as or role, Q.VALIDATOR)
        rho = self.context.sim.judge_error_correlation
        err = Q.judge_errors(*Q.error_draws(lat, me), rho, j.halo)
        a, b = Q.scores(adh, aes, j, err, rng.standard_normal(2), Q.uniform(lat.key, f"lapse/{me}"))
        return _scores_text(float(a), float(b), rng)


def _plausibility(image: np.ndarray) -> str:
    """What the gate sees in a source image: a flaw or a missing object the T2I model drew into it
    (written into its pixels: tag.py); a photo looks clean."""
    scene = tag.read(image)
    state = scene["state"] if scene else None
    if state is None:
        return "clean"
    if state.get("implausible"):
        return "implausible"
    return "missing" if any(not o["present"] for o in state["objects"]) else "clean"


__all__ = ["SimText", "SimT2I", "SimEditor", "SimJudge", "item_seed"]
