"""R-Adapt companion library: a small-scale, reproducible re-derivation of the R-Adapt paper."""
__all__ = ["config", "data", "models", "zeroshot", "attacks", "cache", "stats", "reference"]
