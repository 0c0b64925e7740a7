"""R-Adapt companion library: a small-scale, reproducible re-derivation of the R-Adapt paper."""
import warnings

# huggingface_hub (under open_clip) imports tqdm.auto, which warns inside kernels without
# ipywidgets; plain text progress bars are what the book wants, so the warning is noise.
warnings.filterwarnings("ignore", message="IProgress not found")

__all__ = ["config", "data", "models", "zeroshot", "attacks", "evaluation", "training", "results", "stats",
           "cache", "reference", "plots", "defense", "rtables", "analysis", "page", "zoo"]
