"""nhr-ray: mine instruction-guided image-editing triplets with no human in the loop, on Ray."""

__version__ = "0.1.0"
