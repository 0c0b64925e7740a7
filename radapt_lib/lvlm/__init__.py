"""R-Adapt on large vision-language models (Sec. 5 "Extending R-Adapt to LLaVA", App. E; Tables 5, 10, 11).

One code path for both profiles: every model implements `base.VisionLanguageModel` (the mini LLaVA-recipe
models in `mini_vlm`; LLaVA-1.5 and Qwen3-VL through transformers in `paper_vlm`), and V-Attack (`vattack`),
the R-Adapt+ anchor for an LVLM's encoder (`anchor`) and the CAP / VQA protocol (`protocol`) only use it.
"""
