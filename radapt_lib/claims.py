"""The claims ledger: each of the paper's claims, the pages that test it, and what their computed results say.

Nothing here is a result. A claim lists its evidence as (page, glued verdict, glued effect); `ledger` reads
those values from the executed pages in `book/` (the record that nbval guards), so a page that changes its
numbers changes this ledger when the book is rebuilt. A verdict word no rule knows is an error, not a guess.
"""
from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import config
from .page import literal_or_text

GLUE_MIME = "application/papermill.record/text/plain"
BOOK_HINT = "build it with `scripts/book.sh` (executes the pages into book/)"


@dataclass(frozen=True)
class Evidence:
    page: str  # notebook stem, e.g. "20_table1_main"
    test: str  # what the page compares, in words
    verdict: str  # glue key of the page's verdict for this comparison
    effect: str  # format string over glue keys, e.g. "{t1_plus_rob_ours} pp"
    paper: str = ""  # format string over glue keys for the paper's value ("" when the page glues none)
    timed: bool = False  # read from wall-clock timings: shown, not counted (it changes from run to run)


@dataclass(frozen=True)
class PaperClaim:
    key: str
    claim: str
    where: str  # the paper's section / figure / table
    evidence: tuple[Evidence, ...]


CLAIMS: tuple[PaperClaim, ...] = (
    PaperClaim("C0", "Adversarial fine-tuning (TeCoA, TGA, FARE) makes CLIP robust, at a price in clean accuracy that is "
          "larger out of distribution.", "Sec. 1, Table 1", (
              Evidence("02_main_results", "each fine-tune's robust accuracy above CLIP's, clean cost on the source split",
                       "verdict", "{n_above} above CLIP (+{min_gain} to +{max_gain} pp robust); clean cost {cost_src} pp "
                       "source, {cost_ood} pp OOD"),)),
    PaperClaim("C1", "Robustness is established in the shallow layers: robust and vanilla CLIP part ways at the first "
          "block, and replacing the first layers brings most of the robust model's robustness.", "Sec. 3.1, Figs. 2-4", (
              Evidence("10_cka", "a representational gap at the robust first block (layer-wise CKA with CLIP)",
                       "cka_verdict", "best CKA of the robust first block {cka_b1}; first block least matched in {cka_gaps}"),
              Evidence("11_progressive_replacement", "robust accuracy nearly saturates once Emb and B1 are replaced",
                       "rep_verdict", "90 % of the gain at {rep_sat}; after Emb + B1-Attn: {rep_share} of the robust "
                       "model's robust accuracy", "{rep_paper_share} (FARE, Caltech256)"),
          )),
    PaperClaim("C2", "The robust patch embedding acts as a low-pass filter (a low-frequency spectral bias).", "Sec. 3.2, Fig. 5", (
        Evidence("12_spectral_shift", "low-pass index of the embedding's change, DC bin left out, against a clean "
                 "fine-tune", "spec_verdict", "{spec_main}: {spec_main_nodc}; minus the clean fine-tune: {spec_vs_control}"),)),
    PaperClaim("C3", "The robust first attention block is input-insensitive: it attends to non-semantic (e.g. white) "
          "regions, and the heads that do so carry the robustness.", "Sec. 3.2, Figs. 6, 11", (
              Evidence("13_first_block_attention", "[CLS] attention on the brightest patches, robust minus CLIP",
                       "att_verdict", "{att_diff} (all images); {att_diff_white} (near-white images)"),
              Evidence("14_input_insensitivity", "first-block outputs for different images more alike than CLIP's",
                       "ins_verdict", "cosine between images: {ins_pairs}"),
              Evidence("15_head_shapley", "heads fixated on plain regions carry the first block's robustness",
                       "sh_verdict", "positive vs negative heads {sh_posneg}"),
          )),
    PaperClaim("C4", "Updating the deep layers costs clean accuracy, and out of distribution both clean and robust "
          "accuracy (overfitting of the fine-tuning set).", "Sec. 3.3, Fig. 4", (
              Evidence("11_progressive_replacement", "in distribution: robustness rises while clean accuracy falls",
                       "rep_tradeoff_verdict", "{rep_tradeoff}"),
              Evidence("11_progressive_replacement", "out of distribution: both fall as layers are replaced",
                       "rep_ood_verdict", "{rep_ood}"),
          )),
    PaperClaim("C5", "GIF + FRA reconcile robustness and accuracy: R-Adapt+ is more robust than FARE and keeps more "
          "clean accuracy; the training-free R-Adapt_X restores the fine-tunes' clean accuracy.",
          "Sec. 5, Tables 1-3, 6", (
              Evidence("20_table1_main", "R-Adapt+ - FARE, robust (APGD-CE, 4/255)", "t1_plus_rob_verdict",
                       "{t1_plus_rob_ours} pp", "{t1_plus_rob_paper} pp"),
              Evidence("20_table1_main", "R-Adapt+ - FARE, clean", "t1_plus_clean_verdict", "{t1_plus_clean_ours} pp",
                       "{t1_plus_clean_paper} pp"),
              Evidence("20_table1_main", "R-Adapt_FARE - FARE, clean", "t1_fare_clean_verdict", "{t1_fare_clean_ours} pp",
                       "{t1_fare_clean_paper} pp"),
              Evidence("20_table1_main", "R-Adapt_TeCoA - TeCoA, clean", "t1_tecoa_clean_verdict",
                       "{t1_tecoa_clean_ours} pp", "{t1_tecoa_clean_paper} pp"),
              Evidence("20_table1_main", "R-Adapt_CLIP - CLIP, robust", "t1_free_rob_verdict", "{t1_free_rob_ours} pp",
                       "{t1_free_rob_paper} pp"),
              Evidence("21_table2_attacks", "R-Adapt+ - FARE, robust under APGD-CE at 2/255", "t2_apgdce_2_verdict",
                       "{t2_apgdce_2_ours} pp", "{t2_apgdce_2_paper} pp"),
              Evidence("22_table3_attacks", "R-Adapt+ - FARE, robust under APGD-DLR at 4/255", "t3_apgddlr_4_verdict",
                       "{t3_apgddlr_4_ours} pp", "{t3_apgddlr_4_paper} pp"),
              Evidence("24_ablations", "GIF + FRA over GIF alone (Table 6's synergy)", "ab_syn_verdict", "{ab_syn_gain}"),
          )),
    PaperClaim("C6", "R-Adapt is cheap: no noticeable inference cost, an anchor trained on a few thousand images, and "
          "more anchor images or iterations help.", "Sec. 4.2, Fig. 1, Tables 7-8", (
              Evidence("23_cost", "inference overhead of R-Adapt+ at most 1.05x", "cost_target",
                       "{cost_ratio_plus}x the plain forward; training {cost_time_ratio}x less wall-clock than FARE",
                       timed=True),
              Evidence("25_training_scale", "more anchor images: more robust (Table 7)", "ts_n_verdict", "{ts_n_gain}"),
              Evidence("25_training_scale", "more anchor epochs: more robust (Table 8)", "ts_e_verdict", "{ts_e_gain}"),
          )),
    PaperClaim("C7", "R-Adapt+ carries over to image-text retrieval: it keeps clean Recall@1 closer to CLIP's than FARE "
          "does, and is more robust than FARE at 2/255.", "Sec. 5, Table 4", (
              Evidence("29_retrieval", "R-Adapt+ - FARE, clean R@1", "t4_clean_verdict", "{t4_clean_diff} pp",
                       "{t4_clean_paper} pp"),
              Evidence("29_retrieval", "R-Adapt+ - FARE, robust R@1 (PGD, 2/255)", "t4_robust2_verdict", "{t4_robust2_diff} pp",
                       "{t4_robust2_paper} pp"),
          )),
    PaperClaim("C8", "R-Adapt+ carries over to LVLMs: under V-Attack it restores captions and VQA answers that name the "
          "image's object, more so the higher the anchor's training eps (LLaVA), while clean accuracy stays >= 98 %.",
          "Sec. 5, App. E, Tables 5, 11", (
              Evidence("30_lvlm", "LLaVA's role: R-Adapt+ (16/255) - no defense, robust CAP", "t5_gain_cap_verdict",
                       "{t5_gain_cap_ours} pp", "{t5_gain_cap_paper} pp"),
              Evidence("30_lvlm", "LLaVA's role: R-Adapt+ (16/255) - no defense, robust VQA", "t5_gain_vqa_verdict",
                       "{t5_gain_vqa_ours} pp", "{t5_gain_vqa_paper} pp"),
              Evidence("30_lvlm", "LLaVA's role: robust CAP, anchor at 16 - at 4/255", "t5_rise_cap_verdict",
                       "{t5_rise_cap_ours} pp", "{t5_rise_cap_paper} pp"),
              Evidence("30_lvlm", "LLaVA's role: clean CAP >= 98 % at every setting", "t5_clean_cap_verdict",
                       "{t5_clean_cap_ours} %", "{t5_clean_cap_paper} %"),
              Evidence("30_lvlm", "Qwen3-VL's role: R-Adapt+ (16/255) - no defense, robust CAP", "t11_gain_cap_verdict",
                       "{t11_gain_cap_ours} pp", "{t11_gain_cap_paper} pp"),
              Evidence("30_lvlm", "Qwen3-VL's role: clean VQA >= 98 % at every setting", "t11_clean_vqa_verdict",
                       "{t11_clean_vqa_ours} %", "{t11_clean_vqa_paper} %"),
          )),
)

# A page's verdict text -> one of these categories; the first rule that matches wins.
CATEGORY_RULES: tuple[tuple[str, str], ...] = (
    ("excluded", "excluded"), ("opposite sign", "against"), ("contradicts", "against"), ("not met", "against"),
    ("same sign", "for"), ("only partly", "partly"), ("partly", "partly"), ("supports", "for"), ("met", "for"),
    ("sign undecided", "undecided"), ("cannot decide", "undecided"),
)
CATEGORIES = ("for", "against", "undecided", "partly", "excluded", "timing")
NOT_COUNTED = ("excluded", "timing")  # a collapsed model's comparison; a wall-clock reading


def book_dir() -> Path:
    return config.REPO_ROOT / "book"


def records_dir(records: str | Path | None = None) -> Path:
    """The folder of executed pages to read: `records`, or the book's own record (book/) when None."""
    folder = book_dir() if records is None else Path(records).expanduser()
    if not folder.is_dir() or not any(folder.glob("[0-9]*.ipynb")):
        raise FileNotFoundError(f"records={str(records)!r}: {folder} holds no executed pages; give the folder papermill "
                                f"wrote them to, or leave records=None for book/ ({BOOK_HINT})")
    return folder


def page_values(page: str, folder: Path | None = None) -> dict[str, object]:
    """Every value a page glued (myst_nb), read from its executed notebook."""
    path = (folder or book_dir()) / f"{page}.ipynb"
    if not path.exists():
        raise FileNotFoundError(f"no executed page {path}: {BOOK_HINT}")
    values: dict[str, object] = {}
    for cell in json.loads(path.read_text())["cells"]:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if name and GLUE_MIME in out.get("data", {}):
                values[name] = literal_or_text(out["data"][GLUE_MIME])
    return values


def category(verdict: str) -> str:
    """'for', 'against', 'undecided', 'partly' or 'excluded' for a page's verdict text."""
    text = str(verdict).strip().lower()
    for needle, cat in CATEGORY_RULES:
        if re.search(rf"\b{re.escape(needle)}\b", text):
            return cat
    raise ValueError(f"verdict {verdict!r} matches no rule in claims.CATEGORY_RULES: add one for it")


def fill(template: str, values: dict[str, object], page: str) -> str:
    """A format string over a page's glue keys, filled; a missing key names the page to re-execute."""
    missing = [k for _, k, _, _ in string.Formatter().parse(template) if k and k not in values]
    if missing:
        raise KeyError(f"page {page} glues no {missing}: re-execute it ({BOOK_HINT}) or update claims.CLAIMS")
    return template.format(**values)


def overall(categories: Sequence[str]) -> str:
    """One word for a claim from its evidence; excluded (a collapsed model) and timing evidence do not count."""
    usable = [c for c in categories if c not in NOT_COUNTED]
    if not usable:
        return "no usable evidence"
    if len(set(usable)) == 1:
        return {"for": "supported", "against": "contradicted", "undecided": "undecided", "partly": "partly supported"}[usable[0]]
    counts = ", ".join(f"{usable.count(c)} {c}" for c in CATEGORIES if c in usable)
    return f"mixed ({counts})"


def ledger(claims: Sequence[PaperClaim] = CLAIMS, folder: Path | None = None):
    """One row per piece of evidence: claim, page, its verdict and category, our effect, the paper's value."""
    import pandas as pd

    cache: dict[str, dict[str, object]] = {}
    rows = []
    for claim in claims:
        for ev in claim.evidence:
            if ev.page not in cache:  # one read per page, not one per evidence row
                cache[ev.page] = page_values(ev.page, folder)
            values = cache[ev.page]
            verdict = fill("{" + ev.verdict + "}", values, ev.page)  # the page's verdict text, as glued
            rows.append({"claim": claim.key, "page": ev.page, "test": ev.test, "verdict": verdict,
                         "category": "timing" if ev.timed else category(verdict), "ours": fill(ev.effect, values, ev.page),
                         "paper": fill(ev.paper, values, ev.page) if ev.paper else "-"})
    return pd.DataFrame(rows)


def summary(table, claims: Sequence[PaperClaim] = CLAIMS):
    """One row per claim: the claim, where the paper makes it, our overall verdict and its evidence counts."""
    import pandas as pd

    rows = []
    for claim in claims:
        cats = list(table.loc[table["claim"] == claim.key, "category"])
        rows.append({"claim": claim.key, "statement": claim.claim, "paper": claim.where, "verdict": overall(cats),
                     "evidence": ", ".join(f"{cats.count(c)} {c}" for c in CATEGORIES if c in cats),
                     "pages": ", ".join(dict.fromkeys(ev.page for ev in claim.evidence))})
    return pd.DataFrame(rows)


def protocol_notes(folder: Path | None = None):
    """The paper's protocol ambiguities that bear on reading the verdicts, each computed from reference data
    (and, for our choices, from the pages' records)."""
    import pandas as pd

    from . import reference as ref

    t1, t2, t3 = ref.TABLE1_AUTOATTACK, ref.TABLE2, ref.TABLE3
    ours = ref.ROBUST_CLIP_ZERO_SHOT["FARE4"]
    same_aa = [m for m in ref.METHODS if t1[m]["Avg"] == t2[m][("APGD-CE", 4)]]
    same_fab = [m for m in t3 if t3[m][("FAB", 2)] == t3[m][("FAB", 4)]]
    scale = page_values("25_training_scale", folder)
    seeds = page_values("26_training_seeds", folder)
    audit = page_values("27_attack_audit", folder)
    trend = page_values("28_trend_with_scale", folder)
    rows = [
        ("FARE baseline", f"Table 1 gives FARE {t1['FARE']['Avg']:.1f} % AutoAttack (4/255, 16-dataset mean) and "
         f"{ref.TABLE1_CLEAN['FARE']['Avg']:.1f} % clean; FARE's own paper reports {ours[4]:.1f} % and {ours['clean']:.1f} % "
         f"for the same ViT-L/14 checkpoint ({ref.ROBUST_CLIP_CITATION}; other datasets): "
         f"{t1['FARE']['Avg'] - ours[4]:+.1f} pp robust in this paper."),
        ("Table 1's 'AutoAttack'", f"for {len(same_aa)} of {len(ref.METHODS)} methods the Table 1 AutoAttack mean equals "
         f"Table 2's APGD-CE value at 4/255 exactly: Table 1 may report APGD-CE alone, not standard AutoAttack "
         f"(which also runs APGD-T, FAB-T and Square and can only be lower)."),
        ("FAB", f"FAB gives the same accuracy at 2/255 and 4/255 for {', '.join(same_fab) or 'no method'} "
         f"({len(same_fab)} of {len(t3)}): a larger budget that finds nothing more suggests a weak FAB setting."),
        ("Square", f"undefended CLIP keeps {t3['CLIP'][('Square', 4)]:.1f} % under Square at 4/255 against "
         f"{t2['CLIP'][('APGD-CE', 4)]:.1f} % under APGD-CE: standard Square (5000 queries) drives undefended models "
         f"close to 0, so the paper's Square is likely weaker than standard."),
        ("Eq. 8's inner attack and optimiser", "the paper does not state them; this book picks them on held-out "
         f"validation images (page 25): {scale['ts_choice_pick']}."),
        ("Are our robust numbers attack-limited?", f"the adaptive-attack audit (page 27: stronger and adapted attacks, "
         f"per-image worst case) finds the table number standing for {audit['au_stand']} of {audit['au_n']} audited "
         f"models; masking signs: {audit['au_flagged']}."),
        ("Is a disagreement a property of the small scale?", "the trend page (28) measures the quantities behind the "
         "verdicts on mini-clip at a quarter, half and all of its pre-training and trained three times longer (each with "
         f"its FARE) and on TeCoA and TGA fine-tuned 200 and 1000 steps; per claim and axis: {trend['tr_summary']}."),
        ("What the mini scale can show", "the sign of each effect and the mechanisms (where robustness lives, what the "
         "filter and anchor do) on an 8-block, 32-px CLIP trained here; not the paper's magnitudes (ViT-L/14, 16 "
         f"datasets). Training seed: {seeds['sd_seed_same']} seed-dependent Table 1 verdicts are the same on "
         f"{seeds['sd_seed_n']} training seeds (page 26)."),
    ]
    return pd.DataFrame(rows, columns=["note", "finding"])


def verdict_values(summary_table) -> dict[str, str]:
    """Values for the page's verdict text: counts of claims per overall verdict, and each claim's verdict."""
    verdicts = dict(zip(summary_table["claim"], summary_table["verdict"]))

    def which(word: str) -> str:
        keys = [k for k, v in verdicts.items() if v.startswith(word)]
        return f"{len(keys)} ({', '.join(keys)})" if keys else "none"

    out = {"cl_n": str(len(verdicts)), "cl_supported": which("supported"), "cl_contradicted": which("contradicted"),
           "cl_mixed": which("mixed"), "cl_undecided": which("undecided")}
    out.update({f"cl_{k}": v for k, v in verdicts.items()})
    return out


def linked(table, column: str = "pages") -> str:
    """The table as HTML, with each page stem in `column` linked to its page of the rendered book."""
    shown = table.copy()
    shown[column] = shown[column].map(lambda stems: ", ".join(f'<a href="{s.strip()}.html">{s.strip()}</a>'
                                                              for s in str(stems).split(",")))
    return shown.to_html(index=False, escape=False)
