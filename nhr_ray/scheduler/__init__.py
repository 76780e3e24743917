from nhr_ray.scheduler.core import BudgetExhausted, JobScheduler, Ledger

__all__ = ["BudgetExhausted", "JobScheduler", "Ledger"]
