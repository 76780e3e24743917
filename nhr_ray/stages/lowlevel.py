"""Stage 7: low-level check (CPU). D = |Ie - I0| per pixel (max over channels) thresholded at > 40;
label the changed mask by connected components (4-connectivity, 32-bit labels, OpenCV's Spaghetti);
drop the edit if the largest component holds < 0.5 % of all changed pixels (scattered noise).

Decided here: an edit with no changed pixel at all is dropped as `no_change` (the editor silently did
nothing; a correct edit always changes something above the threshold), and an edited image of another
size than its source is dropped as `size_mismatch` (no pixel correspondence exists; resizing would
invent one, and editors that must resize are required to resize back and say so)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from nhr_ray.records import Attempt, Source, Verdict
from nhr_ray.stages.base import Stage, StageResult, Tally


def changed_mask(src: np.ndarray, edited: np.ndarray, threshold: int) -> np.ndarray:
    diff = cv2.absdiff(src, edited)
    d = diff.max(axis=2) if diff.ndim == 3 else diff
    return (d > threshold).astype(np.uint8)


def lowlevel_check(src: np.ndarray, edited: np.ndarray, cfg) -> tuple[bool, str, dict[str, Any]]:
    if src.shape != edited.shape:
        return False, "size_mismatch", {"source_shape": list(src.shape), "edited_shape": list(edited.shape)}
    mask = changed_mask(src, edited, cfg.pixel_threshold)
    changed = int(mask.sum())
    stats: dict[str, Any] = {"changed_pixels": changed, "changed_share": changed / mask.size}
    if changed == 0:
        return False, "no_change", stats
    n, _, comp, _ = cv2.connectedComponentsWithStatsWithAlgorithm(mask, cfg.connectivity, cv2.CV_32S, cv2.CCL_SPAGHETTI)
    largest = int(comp[1:, cv2.CC_STAT_AREA].max())
    stats.update(components=int(n - 1), largest_component=largest, largest_share=largest / changed)
    if largest / changed < cfg.min_largest_component_share:
        return False, "scattered_noise", stats
    return True, "ok", stats


class LowLevelStage(Stage):
    name = "lowlevel"
    role = None

    def process(self, attempts: list[Attempt], sources: dict[str, Source]) -> StageResult:
        tally = Tally(self.name)
        for a in attempts:
            if not a.alive:
                continue
            if not self.config.lowlevel.enabled:
                a.verdicts.append(Verdict(self.name, True, "ok", raw="low-level check disabled"))
                tally.add(a.verdicts[-1])
                tally.notes["lowlevel_disabled"] += 1
                continue
            keep, reason, stats = lowlevel_check(sources[a.job.source_id].image, a.edited, self.config.lowlevel)
            a.lowlevel = stats
            v = Verdict(self.name, keep, reason)
            a.verdicts.append(v)
            tally.add(v)
        return self.attempts_result(attempts, tally)
