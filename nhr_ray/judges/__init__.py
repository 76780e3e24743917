"""Judge profiles (prompt, answer format, scale) for the scoring judges; see profiles.py."""

from nhr_ray.judges.profiles import JudgeProfile, get_profile, profile_class, profile_names, role_profile

__all__ = ["JudgeProfile", "get_profile", "profile_class", "profile_names", "role_profile"]
