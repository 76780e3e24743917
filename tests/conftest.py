from conftest_models import tiny_models  # noqa: F401  (session fixture: tiny real checkpoints)
