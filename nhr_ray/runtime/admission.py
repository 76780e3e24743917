"""Back-pressure on source generation (pure; the driver asks it before each batch of sources).

Every kept source image stays pinned in the object store (on the driver's node) until all of its
edit jobs are done, and the scheduler draws jobs only from sources it has been given. Making
sources whenever the T2I and gate pools have room would pin nearly every source of a large run at
once (the H100 config's 200,000 images of about 3 MB: hundreds of GB). So a batch of sources is
submitted only while the bytes of pinned sources plus those of batches still in the T2I and gate
stages (reserved at their requested size, released when they land; the gate's rejects are never
pinned) stay within `sources.max_pinned_bytes`, and the jobs not yet drawn plus those the batches in
flight may add stay within `sources.max_pending_jobs`. Generation resumes as jobs finish and their
sources are let go.

It cannot deadlock: a batch always goes when nothing could free memory or feed the editors by
waiting (no source pinned and none in flight; no job left to draw or run and none in flight; no
job pending for the pending-jobs limit), so a limit smaller than one source still makes progress,
one batch at a time. Uniform draws stay uniform over the admitted sources: with a limit that binds
and a budget smaller than the queue, the run spends its budget on the sources made first instead of
a sample of all of them (their mix of scenes and categories is what the designer made, in order).
"""

from __future__ import annotations

import time
from typing import Any, Callable


class SourceAdmission:
    def __init__(self, max_bytes: int | None, max_jobs: int | None, estimate: Callable[[list], tuple[int, int]]):
        self.max_bytes, self.max_jobs, self.estimate = max_bytes, max_jobs, estimate
        self.reserved_bytes = self.reserved_jobs = 0  # batches in the T2I and gate stages
        self.peak_pinned = self.peak_committed = self.largest = 0  # largest: one source's bytes
        self.pauses, self.paused_s = 0, 0.0
        self._paused_at: float | None = None

    def allow(self, batch: list, pinned_bytes: int, pending_jobs: int, edit_work: bool) -> bool:
        """May `batch` (source tasks) be submitted now? `edit_work`: jobs are pending or running."""
        est_bytes, est_jobs = self.estimate(batch)
        idle = self.reserved_bytes == 0 and self.reserved_jobs == 0
        bytes_ok = (self.max_bytes is None or pinned_bytes + self.reserved_bytes + est_bytes <= self.max_bytes
                    or (idle and (pinned_bytes == 0 or not edit_work)))  # fmt: skip
        jobs_ok = (self.max_jobs is None or pending_jobs + self.reserved_jobs + est_jobs <= self.max_jobs
                   or (idle and pending_jobs == 0))  # fmt: skip
        ok = bytes_ok and jobs_ok
        if not ok and self._paused_at is None:
            self.pauses += 1
            self._paused_at = time.monotonic()
        elif ok and self._paused_at is not None:
            self.paused_s += time.monotonic() - self._paused_at
            self._paused_at = None
        return ok

    @property
    def paused(self) -> bool:
        """The last batch asked about had to wait."""
        return self._paused_at is not None

    def reserve(self, batch: list, pinned_bytes: int) -> tuple[int, int]:
        """Count a submitted batch as in flight; returns what to release() when it lands."""
        est = self.estimate(batch)
        self.reserved_bytes += est[0]
        self.reserved_jobs += est[1]
        self.peak_committed = max(self.peak_committed, pinned_bytes + self.reserved_bytes)
        return est

    def release(self, reserved: tuple[int, int]) -> None:
        self.reserved_bytes -= reserved[0]
        self.reserved_jobs -= reserved[1]

    def pinned(self, pinned_bytes: int, one: int) -> None:
        """A source was pinned: `pinned_bytes` are pinned now, `one` of them its image's."""
        self.peak_pinned = max(self.peak_pinned, pinned_bytes)
        self.largest = max(self.largest, one)

    def report(self) -> dict[str, Any]:
        paused = self.paused_s + (time.monotonic() - self._paused_at if self._paused_at is not None else 0.0)
        return {"max_pinned_bytes": self.max_bytes, "max_pending_jobs": self.max_jobs,
                "peak_pinned_bytes": self.peak_pinned, "peak_pinned_and_in_flight_bytes": self.peak_committed,
                "pauses": self.pauses, "paused_s": round(paused, 2)}  # fmt: skip


def batch_estimate(cfg, attempts_for: Callable[[str], int], largest: Callable[[], int]) -> Callable[[list], tuple[int, int]]:
    """(image bytes, edit jobs) a batch of source tasks may pin and add, at most. Rendered sources
    are made at their bucket's size, known before they are made; a photo's size is known only once
    read, so photos are estimated at the largest source seen so far (`largest()`)."""
    from nhr_ray.records import source_id
    from nhr_ray.stages.sources import choose_bucket

    s = cfg.sources

    def estimate(batch: list) -> tuple[int, int]:
        nbytes = jobs = 0
        for scene, n in batch:
            if isinstance(n, dict):  # a photo task: (scene, reference)
                nbytes += 0 if n.get("reject") else largest()
            else:
                _, (w, h) = choose_bucket(cfg.seed, source_id(scene.scene_id, n), s)
                nbytes += w * h * 3
            jobs += sum(attempts_for(i.category) for i in scene.instructions)
        return nbytes, jobs

    return estimate
