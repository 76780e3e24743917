"""SIMULATION. What a candidate edit is truly worth, and how fallible judges score it (issue 17).

The truth is what a careful human would say, on the paper's 1-5 scale, of the triplet a model is
handed. It is a function of that triplet alone (the two images and the instruction): of what
perceive.py measures in it (done, outside, specks, feasible), and of qualities our renderer does not
draw but a person would see, read from a digest of the two images (`Latents`: how well the edit is
finished on each axis, how pleasing the picture is). An inverse triplet (the same two images) has
the same latents as its forward twin. sat(x, s) = 1 - exp(-x / s):

    adherence  = 1 + 4 done [feasible] - 2.6 sat(outside, .02) - 2.5 sat(specks, .02) - 1.2 finish_adh
    aesthetics = picture - 2.5 sat(specks, .02) - 3 done max(.9 - done, 0) [feasible] - finish_aes

A score judge maps each axis through 3 + offset + slope (truth - 3) and adds sd e + jitter n, with
sd = sigma (1 - hetero min(1, max(0, (truth - 3) / 2))^2) (an excellent edit is judged more
consistently than a mediocre or failed one, as with real VLM judges), then
lands on a 0.05 grid (so every threshold, 4.0, 4.5, 4.7, is a reachable score crossed both ways):
    e = sqrt(rho) shared + sqrt(1 - rho) own     (per axis; aesthetics mixes in adherence's by `halo`)
`shared` is the pair's ambiguity, the same for every judge; `own` is this judge's view of the pair
(the same for a forward triplet and its inverse, and for a question asked twice: temperature 0); `n`
is the call's own noise. So two judges err with correlation rho on a candidate (issue 19 combines
them), and one judge's marginal figures do not depend on rho. The offsets, slopes and sigmas are
fitted (benchmarks/sim_judges.py --fit) to the paper's Table 1 and Table 7 rows, on a sample of
candidates whose share of positives (both truths > 4.0) is the paper's rated set's, 0.425 (Table 7's
precision, recall and accuracy of either judge imply it).

The pre-filter's yes/no questions threshold a latent of the same perception (set by judgement, then
u0 and the pleasing bar tuned with the world to Table 3's pre-filter row):
    only the asked-for change:  u0 - 3 sat(outside) - 3 (1 - done [feasible]) - 2 sat(specks) + N > 0
    pleasing (the edit alone):  aesthetics + 0.5 N > 3.6
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from nhr_ray.records import seeded_rng

GRID = 0.05
HUMAN_POSITIVE = 4.0  # the paper's positive class: both human scores above this


FINISH_SCENE = 0.9  # share of the finish latent's variance that is the scene's


@dataclass(frozen=True)
class Latents:
    finish: tuple[float, float]  # (adherence, aesthetics) flaws of execution, 0..1
    picture: float  # how pleasing the pair's picture is, 1..5
    key: bytes  # digest of the unordered image pair: seeds every judge's view of it
    scene: bytes  # the scene both images show (its texture seed, read from the pixels), else `key`


def _digest(img: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(img).tobytes() + repr(img.shape).encode(), digest_size=16).digest()


def _uniforms(key: bytes, label: str, n: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(key + label.encode(), digest_size=8).digest(), "little")
    return seeded_rng(seed).random(n)


def uniform(key: bytes, label: str) -> float:
    return float(_uniforms(key, label, 1)[0])


def normals(key: bytes, label: str, n: int = 2) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(key + label.encode(), digest_size=8).digest(), "little")
    return seeded_rng(seed).standard_normal(n)


def latents(source: np.ndarray, edited: np.ndarray, instruction: str = "") -> Latents:
    """The pair's latents. `scene` is the scene both images show and the place in it the instruction
    names (an inverse names the same place as its forward), so a judge's misreading and an edit's
    finish are shared by one pair's attempts, not by every pair of a source."""
    from nhr_ray.backends.sim import tag
    from nhr_ray.backends.sim import world as W

    d = _digest(source)
    key = b"".join(sorted((d, d if edited is source else _digest(edited))))
    seen = tag.read(source) or tag.read(edited)
    place = next((p for p in W.POSITIONS if p in instruction.lower()), "whole picture")
    scene = f"scene:{seen['texture_seed']}:{place}".encode() if seen else key
    u = _uniforms(scene, "truth", 2)  # the picture is the scene's
    picture = float(np.clip(4.65 + 0.3 * NormalDist().inv_cdf(min(max(u[1], 1e-9), 1 - 1e-9)), 1.0, 5.0))
    # mostly small, now and then a poorly finished edit; much of it is the scene's (some pictures are
    # hard to edit cleanly, whatever the seed), the rest the candidate's
    z = np.sqrt(FINISH_SCENE) * normals(scene, "finish") + np.sqrt(1 - FINISH_SCENE) * normals(key, "finish")
    f = np.array([NormalDist().cdf(float(x)) for x in z]) ** 2.5
    return Latents((float(f[0]), float(f[1])), picture, key, scene)


def _sat(x, s=0.02):
    return 1.0 - np.exp(-np.asarray(x, float) / s)


def true_quality(done, outside, specks, feasible, finish_adh, finish_aes, picture):
    """(adherence, aesthetics) a careful human gives (module docstring); arrays or scalars."""
    d = np.asarray(done, float) * np.asarray(feasible, float)
    out, spk = _sat(outside), _sat(specks)
    adh = 1 + 4 * d - 2.6 * out - 2.5 * spk - 1.2 * np.asarray(finish_adh, float)
    aes = np.asarray(picture, float) - 2.5 * spk - 3 * d * np.maximum(0.9 - d, 0) - 1.0 * np.asarray(finish_aes, float)
    return np.clip(adh, 1, 5), np.clip(aes, 1, 5)


def on_grid(x):
    return np.clip(np.round(np.asarray(x, float) / GRID) * GRID, 1.0, 5.0).round(2)


@dataclass(frozen=True)
class ScoreJudge:
    """One scoring model, per axis (adherence, aesthetics)."""

    offset: tuple[float, float]
    slope: tuple[float, float]
    sigma: tuple[float, float]
    halo: float = 0.3
    jitter: float = 0.1
    hetero: float = 0.0  # how much less it errs on excellent edits: sigma (1 - hetero min(1, max(0, (t - 3) / 2))^2)
    lapse: float = 0.0  # share of candidates it takes as done (adherence seen near 5): a VLM "seeing" an edit


SCENE_SHARE = 0.95  # of a judge's error, the part it makes on the scene (all its candidates), not the candidate


def error_draws(lat: Latents, judge: str) -> tuple[np.ndarray, np.ndarray]:
    """(shared, own) standard normals per axis for one judge on one candidate: each is part scene
    (SCENE_SHARE: a judge misreads a scene the same way in every candidate of it, so its passes
    cluster in sources, as the paper's 2.8 passing attempts per successful pair need) and part pair."""
    c = np.sqrt(SCENE_SHARE), np.sqrt(1 - SCENE_SHARE)
    shared = c[0] * normals(lat.scene, "shared") + c[1] * normals(lat.key, "shared")
    own = c[0] * normals(lat.scene, f"own/{judge}") + c[1] * normals(lat.key, f"own/{judge}")
    return shared, own


def judge_errors(shared: np.ndarray, own: np.ndarray, rho: float, halo: float) -> np.ndarray:
    """(..., 2) errors of one judge: shared ambiguity at weight sqrt(rho), its own view at sqrt(1 - rho)."""
    e = np.sqrt(rho) * np.asarray(shared, float) + np.sqrt(1.0 - rho) * np.asarray(own, float)
    aes = halo * e[..., 0] + np.sqrt(1.0 - halo * halo) * e[..., 1]
    return np.stack([e[..., 0], aes], axis=-1)


def scores(truth_adh, truth_aes, j: ScoreJudge, err: np.ndarray, noise: np.ndarray, lapse_u):
    """(adherence, aesthetics) on the grid; err from judge_errors, noise: (..., 2) normals of the call,
    lapse_u: a uniform of this judge's view of the pair (below `lapse`: it sees the asked-for change done)."""
    seen_adh = np.where(np.asarray(lapse_u) < j.lapse, 4.9, truth_adh)
    out = []
    for k, t in enumerate((seen_adh, truth_aes)):
        t = np.asarray(t, float)
        sd = j.sigma[k] * (1 - j.hetero * np.clip((t - 3) / 2, 0, 1) ** 2)
        v = 3 + j.offset[k] + j.slope[k] * (t - 3) + sd * err[..., k] + j.jitter * noise[..., k]
        out.append(on_grid(v))
    return out[0], out[1]


# Fitted by benchmarks/sim_judges.py --fit. The paper's fine-tuned validator (Table 1: adherence MAE 0.503,
# rho 0.815; aesthetics MAE 0.568, rho 0.631; Table 7 at 4.7: precision 0.834, recall 0.446):
VALIDATOR = ScoreJudge(offset=(-0.60, 0.10), slope=(1.27, 1.87), sigma=(0.93, 0.86), halo=0.18, lapse=0.004, hetero=0.06)
# Qwen2.5-VL-72B, the pre-filter (MAE 0.961 / 0.839, rho 0.551 / 0.361; precision 0.571, recall 0.483):
PREFILTER = ScoreJudge(offset=(1.70, -0.02), slope=(0.42, 1.05), sigma=(0.96, 1.73), halo=0.92, lapse=0.09, hetero=0.39)
JUDGES = {"validator": VALIDATOR, "prefilter": PREFILTER}


@dataclass(frozen=True)
class YesNo:
    u0: float = 1.6
    t_pleasing: float = 3.6
    sigma_pleasing: float = 0.5


YES_NO = YesNo()


def only_asked_change(done, outside, specks, feasible, z, y: YesNo = YES_NO):
    d = np.asarray(done, float) * np.asarray(feasible, float)
    latent = y.u0 - 3 * _sat(outside) - 3 * (1 - d) - 2 * _sat(specks)
    return latent + z > 0


def pleasing(truth_aes, z, y: YesNo = YES_NO):
    return np.asarray(truth_aes, float) + y.sigma_pleasing * z > y.t_pleasing
