"""The method of SPEC.md, one module per step, as plain code: rows in, rows and counted outcomes out.

    design -> sources -> gate -> [scheduler] -> edit -> prefilter -> lowlevel -> validation
           -> select (best-of) -> inversion -> compose -> consistency

Nothing here imports ray: the runtime places these stages on actors and never the other way round.
"""
