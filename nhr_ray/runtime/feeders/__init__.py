"""Feeders: where the runner's work comes from, each readable alone. Each has `top_up()` (submit
work while its pools have room), `submit(...)` (also how a lost batch is re-issued) and says when
it has nothing more to give; the runner (runtime/driver.py) calls them in pipeline order.

    DesignFeeder   design requests, in request order, until there are enough scenes  (designs.py)
    SourceFeeder   source tasks -> t2i, chained into the gate, while admission allows  (sources.py)
    ChainFeeder    edit jobs drawn from the scheduler -> editor -> judges -> rows (CPU)  (chains.py)
"""

from nhr_ray.runtime.feeders.chains import ChainFeeder, tail_chunks
from nhr_ray.runtime.feeders.designs import DesignFeeder, Designs
from nhr_ray.runtime.feeders.sources import SourceFeeder

__all__ = ["ChainFeeder", "DesignFeeder", "Designs", "SourceFeeder", "tail_chunks"]
