"""Data products and judgement tools built on a finished run or on any dataset: validator
calibration against human ratings, exports (NHR-Edit layout, DPO, KTO, curriculum), cross-dataset
scoring and the static HTML run report. Nothing here imports ray at module level."""
