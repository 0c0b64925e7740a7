"""The R-Adapt pages' plumbing: one `Study` (models, images, anchors, defended variants), evaluation
grids as tidy frames, comparison tables beside the paper's numbers, verdicts and cost timings.

Pages call one to three functions of this package per cell, as `rtables.<name>`; every public name
is re-exported here from the module of its concern:

- `study`: `Study`, `Variant`, `average` and the profiles' defaults (the one way to evaluate a grid);
- `tables`: Tables 1, 2/3, 6 and the sweep tables, `ci`, `warnings_of`, `stack`;
- `verdicts`: `judge`, `Claim`s, `claims_table` and the per-page verdicts;
- `text`: `glue_all`, `protocol`, `collapsed`, `plus_summary`;
- `cost`: inference overhead and training budget;
- `sweeps`: Table 6's variants and the R-Adapt+ sweeps;
- `d0rules`: the paper-scaled and the calibrated filter cutoff, side by side;
- `figures`: the pages' plots;
- `audit` (imported as a module, `rtables.audit.run` ...): the adaptive-attack audit of the defended models;
- `trend` (imported as a module, `rtables.trend.run` ...): the verdicts' quantities against training scale;
- `table4` (imported as a module): Table 4's image -> text retrieval, clean and attacked.

Everything heavy is cached below it (`evaluation.evaluate` for attacks, `anchor_zoo.load_or_train` for
R-Adapt+ anchors: released or cached).
"""
from . import audit, table4, trend
from .d0rules import (CALIBRATED, D0_GRID_224, D0Calibration, calibrate_d0, calibration_table, paper_gif_clean_cost,
                      rules_table, validation_images)
from .cost import (budget_counts, cost_verdict, inference_overhead, overhead_pairs, time_forward, timed_here,
                   training_budget)
from .figures import (plot_audit, plot_eps, plot_fig7, plot_retrieval, plot_retrieval_examples, plot_sweep, plot_tradeoff,
                      plot_training_scale, plot_trend)
from .study import (BASELINES, DEFAULTS, METHODS, PLUS_DEFAULT, RADAPT, Study, Variant, average, default_datasets,
                    load_images)
from .sweeps import ABLATION, ANCHOR_CHOICES, add_ablation_variants, anchor_choices, anchor_epochs, sweep
from .tables import ci, stack, sweep_table, table1, table6, table_by_eps, training_scale_table, warnings_of
from .text import collapsed, glue_all, plus_summary, protocol
from .verdicts import (PAPER_SCALE_GAIN, TABLE1_CLAIMS, Claim, ablation_verdict, claims_table, delta_claims,
                       glue_claims, judge, judge_pair, distribution_claims, masking_check, overall, seed_claims, seed_summary,
                       show_claims, transfer_claims,
                       training_scale_verdict)

__all__ = [
    # study
    "BASELINES", "METHODS", "RADAPT", "PLUS_DEFAULT", "DEFAULTS", "default_datasets", "load_images", "Variant", "Study",
    "average",
    # tables
    "ci", "table1", "table_by_eps", "warnings_of", "stack", "table6", "sweep_table", "training_scale_table",
    # verdicts
    "judge", "judge_pair", "Claim", "TABLE1_CLAIMS", "delta_claims", "overall", "claims_table", "glue_claims", "show_claims",
    "ablation_verdict", "PAPER_SCALE_GAIN", "training_scale_verdict", "masking_check", "seed_claims", "seed_summary",
    "transfer_claims", "distribution_claims",
    # text
    "glue_all", "protocol", "collapsed", "plus_summary",
    # cost
    "time_forward", "inference_overhead", "overhead_pairs", "budget_counts", "timed_here", "training_budget", "cost_verdict",
    # sweeps
    "ABLATION", "ANCHOR_CHOICES", "add_ablation_variants", "anchor_choices", "anchor_epochs", "sweep",
    # the two D0 rules
    "CALIBRATED", "D0_GRID_224", "D0Calibration", "calibrate_d0", "calibration_table", "paper_gif_clean_cost", "rules_table",
    "validation_images",
    # figures
    "plot_tradeoff", "plot_sweep", "plot_eps", "plot_fig7", "plot_training_scale", "plot_audit", "plot_trend", "plot_retrieval",
    "plot_retrieval_examples",
    # the page modules
    "audit", "table4", "trend",
]
