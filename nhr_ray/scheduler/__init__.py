from nhr_ray.scheduler.checkpoint import CheckpointError
from nhr_ray.scheduler.core import JobBatch, JobScheduler
from nhr_ray.scheduler.ledger import Ledger
from nhr_ray.scheduler.policies import POLICIES, make_policy

__all__ = ["POLICIES", "CheckpointError", "JobBatch", "JobScheduler", "Ledger", "make_policy"]
