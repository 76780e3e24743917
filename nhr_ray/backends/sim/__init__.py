"""SIMULATION backends, one per role kind, listed as `sim` in nhr_ray/backends/__init__.py. See world.py for what they obey.

Costs are virtual: each call reports the GPU-seconds the real model would take on one H100 (SPEC.md's
measured table) for the full-size image, and optionally sleeps that long times `realtime_scale`.
"""

from __future__ import annotations

import json
import time

import numpy as np

from nhr_ray.backends.sim import render as R
from nhr_ray.backends.sim import world as W
from nhr_ray.backends.sim.gpu import run_time_shared
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
            img = R.render(state, tex)
            cost = (self.options.steps * T2I_STEP_S + VAE_DECODE_S) * self._full_area_ratio(r.width, r.height)
            total += cost
            out.append(Answer(image=img, gpu_seconds=cost, sim_truth={"state": state, "texture_seed": tex}))
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
            truth = r.sim_truth or {}
            state = truth.get("state") or R.scene_state("", w, h)
            tex = truth.get("texture_seed", 0)
            parsed = W.parse_instruction(r.instruction)
            cat = parsed[0] if parsed else "other"
            target = R.find_target(state, cat, parsed[1]) if parsed else None
            feasible = not (cat in ("removal", "colour_change", "replacement") and target is None)
            if cat == "removal_all":
                feasible = any(o["present"] for o in state["objects"])
            pair = r.item_id.rpartition(".m")[0] or r.item_id
            cat_key = {"removal_all": "removal", "other": "addition"}.get(cat, cat)
            q = W.beta_pair_q(seed, pair, cat_key, sim.pair_success_mean, sim.pair_concentration, sim.category_difficulty) if feasible else 0.0
            outcome = W.draw_outcome(seed, r.item_id, q, cat_key)
            img = R.render_outcome(state, parsed, target, outcome, tex, seed, r.item_id)
            out.append(
                Answer(
                    image=img,
                    gpu_seconds=cost,
                    meta={"steps": steps},
                    sim_truth={"outcome": outcome, "q": q, "feasible": feasible, "category": cat_key},
                )
            )
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
    Options = SimJudgeOptions

    def ask(self, requests: list[VLMRequest]) -> list[Answer]:
        out, total = [], 0.0
        seed, sim = self.context.run_seed, self.context.sim
        role = self.context.role
        for r in requests:
            rng = item_rng(seed, f"{r.item_id}/{role}", r.question)
            truth = r.sim_truth or {}
            cost = 0.0 if role == "validator" else (GATE_CALL_S if role == "gate" else PREFILTER_S.get(r.question, 0.55))
            total += cost
            kind = "scores" if r.question == "edit_scores" else "yes_no"
            if rng.random() < sim.malformed_rate:
                text = str(rng.choice(MALFORMED[kind]))
            elif r.question == "plausibility":
                state = truth.get("state")
                if state is None:
                    key = "clean"
                elif state.get("implausible"):
                    key = "implausible"
                elif any(not o["present"] for o in state["objects"]):
                    key = "missing"
                else:
                    key = "clean"
                text = _yes_no(rng.random() < W.GATE_PASS[key], rng)
            else:
                text = self._judge_edit(r, truth, rng)
            out.append(Answer(text=text, gpu_seconds=cost))
        self._sleep(total)
        return out

    def _judge_edit(self, r: VLMRequest, truth: dict, rng: np.random.Generator) -> str:
        outcome = truth.get("outcome", "clean" if rng.random() < 0.2 else "partial")
        if "inverse_of" in truth:  # backward consistency: is the inverse triplet right?
            p = W.INVERSE_PASS["true" if truth["inverse_of"] == "clean" else "false"]
        elif self.context.role == "validator":
            p = W.VALIDATOR_PASS.get(outcome, 0.0)
        else:
            p = W.PREFILTER_PASS.get(outcome, 0.0)
        if r.question == "aesthetics":
            return _yes_no(rng.random() < AESTHETIC_OK, rng)
        # the prefilter's three questions share one pass decision per attempt
        passed = W.chance(self.context.run_seed, f"{r.item_id}/{self.context.role}", "pass", p)
        if r.question == "unwanted_change":  # an instruction whose target was never drawn is infeasible
            return _yes_no(passed or (truth.get("feasible", True) and rng.random() < 0.5), rng)
        if passed:
            lo = W.PASS_SCORE_FLOOR.get(self.context.role, 4.72)
            return _scores_text(rng.uniform(lo, 5.0), rng.uniform(lo, 5.0), rng)
        # a failed edit: how badly tracks how hard the pair is (hopeless pairs score lowest)
        hi_floor = 4.0 if self.context.role == "prefilter" else 4.7
        q = float(truth.get("q", 0.2))
        low = float(np.clip(rng.normal(1.6 + 2.2 * np.sqrt(q), 0.35), 1.0, hi_floor - 0.05))
        if rng.random() < 1.0 - 0.5 * np.sqrt(q):  # the harder the pair, the more often adherence is what fails
            return _scores_text(low, rng.uniform(3.5, 5.0), rng)
        return _scores_text(rng.uniform(hi_floor, 5.0), rng.uniform(max(low, 2.0), hi_floor - 0.05) if low < hi_floor - 0.05 else hi_floor - 0.1, rng)


AESTHETIC_OK = W.AESTHETIC_OK

__all__ = ["SimText", "SimT2I", "SimEditor", "SimJudge", "item_seed"]
