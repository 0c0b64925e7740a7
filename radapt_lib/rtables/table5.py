"""Tables 5 and 11 (CAP / VQA under V-Attack) on an LVLM: the study, the table beside the paper, the claims.

The mini profile runs the mini LVLMs (`lvlm.mini_vlm`: mini-llava plays LLaVA-1.5, Table 5; mini-qwen-vl, another
tower with DeepStack, plays Qwen3-VL, Table 11) on CIFAR-10 test images; rows: no defense, then R-Adapt+ with the
anchor trained at eps 4, 8 and 16/255 (the "Setting" column), every row attacked end to end.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import data, reference, stats
from ..lvlm import release
from ..lvlm.base import VisionLanguageModel
from ..lvlm.mini_vlm import CAPTION_PROMPT, QUESTIONS, MiniVLM
from ..lvlm.protocol import LvlmResult, VqaSet, evaluate_lvlm, screened_set
from ..lvlm.vattack import VAttackConfig
from .verdicts import judge

# Each LVLM's role: the paper model it stands for, the table, the paper's numbers, the page's glue prefix.
LLAVA_ROLE = ("LLaVA-1.5", "Table 5", reference.TABLE5, "t5")
QWEN_ROLE = ("Qwen3-VL", "Table 11", reference.TABLE11, "t11")
PAPER = {"mini-llava": LLAVA_ROLE, "mini-qwen-vl": QWEN_ROLE, "llava-1.5": LLAVA_ROLE, "qwen3-vl": QWEN_ROLE}
PROFILE_LVLMS = {"mini": ("mini-llava", "mini-qwen-vl"), "paper": ("llava-1.5", "qwen3-vl")}
TASKS = ("CAP", "VQA")
CLEAN_FLOOR = 98.0  # the paper's "clean accuracy stays >= 98 %"


@dataclass
class LvlmStudy:
    model_name: str
    model: VisionLanguageModel
    vqa: VqaSet
    attack: VAttackConfig
    results: dict[int | None, LvlmResult] = field(default_factory=dict)  # None: no defense; else the anchor's eps

    def settings(self) -> list[int | None]:
        return list(self.results)

    def accuracy(self, setting: int | None, task: str, which: str) -> stats.Estimate:
        r = self.results[setting]
        return r.cap(which) if task == "CAP" else r.vqa(which)

    def per_image(self, setting: int | None, task: str, which: str) -> np.ndarray:
        """Per image: 100 * correct (CAP), or 100 * share of its questions answered correctly (VQA)."""
        table = getattr(self.results[setting], which).astype(np.float64)
        return 100.0 * (table[0] if task == "CAP" else table[1:].mean(0))


def identity(name: str, eps_255: int | None) -> dict:
    """What makes a row's model, by released content (the same on every CPU kind)."""
    record = release.entry(name)
    ident = {"lvlm": record["sha256"], "tower": record["tower_sha256"], "anchor": None}
    if eps_255 is not None:
        cfg = release.anchor_config(eps_255)
        ident.update(anchor=release.anchor_record(name, eps_255)["tensor"], alpha=cfg.alpha, beta=cfg.beta, d0_224=cfg.d0_224)
    return ident


def row_model(model: MiniVLM, name: str, eps_255: int | None) -> MiniVLM:
    if eps_255 is None:
        return model
    cfg = release.anchor_config(eps_255)
    return model.defended(release.load_anchor(name, eps_255), cfg.alpha, cfg.beta, cfg.d0_224)


def mini_set(model: MiniVLM, n_images: int, seed: int, candidates: int = 2000) -> VqaSet:
    test = data.mini_dataset("cifar10", "test", n=candidates, seed=seed)
    objects = tuple(data.CIFAR10_CLASSES[y] for y in test.labels.tolist())
    return screened_set(model, test.images, objects, data.CIFAR10_CLASSES, CAPTION_PROMPT, QUESTIONS, n_images,
                        "CIFAR-10 test")


def lvlms_for(profile: str, names=None) -> list[str]:
    """The page's LVLMs: the profile's two by default; a name of the other profile is refused, naming the right ones."""
    names = list(PROFILE_LVLMS[profile]) if names is None else list(names)
    wrong = [n for n in names if n not in PROFILE_LVLMS[profile]]
    if wrong:
        raise ValueError(f"LVLM(s) {wrong} are not in the {profile} profile: use some of {list(PROFILE_LVLMS[profile])} "
                         f"(e.g. -p lvlms {PROFILE_LVLMS[profile][0]}), or leave lvlms None")
    return names


def run_study(name: str, n_images: int = 100, seed: int = 0, settings=release.SETTINGS,
              attack: VAttackConfig = VAttackConfig(), progress: bool = True) -> LvlmStudy:
    """One LVLM's rows: no defense, then R-Adapt+ at each setting (mini: released; paper: `lvlm.paper_study`)."""
    if name in PROFILE_LVLMS["paper"]:
        from ..lvlm.paper_study import run_paper_study

        return run_paper_study(name, n_images, seed, settings, attack, progress)
    model = release.load_mini_vlm(name)
    study = LvlmStudy(name, model, mini_set(model, n_images, seed), attack)
    for eps in (None, *settings):
        label = "No Defense" if eps is None else f"R-Adapt+ (eps={eps}/255)"
        study.results[eps] = evaluate_lvlm(row_model(model, name, eps), label, identity(name, eps), study.vqa, attack,
                                           progress=progress)
    return study


def _paper(name: str, setting: int | None, task: str, which: str) -> float | None:
    table = PAPER[name][2]
    row = table["No Defense"] if setting is None else table["R-Adapt+"]
    cell = row.get(setting)
    return None if cell is None else cell[task][which]


def table(study: LvlmStudy) -> pd.DataFrame:
    """Table 5 / 11's layout: ours with 95 % CIs beside the paper's value, per row and column."""
    rows = []
    for setting in study.settings():
        row = {"method": "No Defense" if setting is None else "R-Adapt+",
               "setting": "-" if setting is None else f"eps={setting}/255"}
        for task in TASKS:
            for which, col in (("clean", "Clean"), ("robust", "Rob.")):
                row[f"{task} {col}"] = study.accuracy(setting, task, which).fmt(1)
                paper = _paper(study.model_name, setting, task, "clean" if which == "clean" else "rob")
                row[f"{task} {col} (paper)"] = "-" if paper is None else f"{paper:.1f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index(["method", "setting"])


def paired_diff(study: LvlmStudy, a: int | None, b: int | None, task: str, which: str) -> stats.Estimate:
    """Mean per-image difference a - b (same images), with its bootstrap CI."""
    return stats.bootstrap_mean(study.per_image(a, task, which) - study.per_image(b, task, which))


def clean_verdict(est: stats.Estimate) -> str:
    if est.low >= CLEAN_FLOOR:
        return f"met: the CI lies at or above {CLEAN_FLOOR:g} %"
    if est.high < CLEAN_FLOOR:
        return f"not met: the CI lies below {CLEAN_FLOOR:g} %"
    return f"cannot decide: the CI holds {CLEAN_FLOOR:g} %"


def claims(study: LvlmStudy) -> pd.DataFrame:
    """Each claim of the paper's LVLM paragraph: our value with its CI, the paper's, the verdict."""
    name, top, low = study.model_name, max(s for s in study.settings() if s is not None), min(
        s for s in study.settings() if s is not None)
    rows = []
    for task in TASKS:
        claim = f"robust {task} rises with the anchor's training eps ({top} vs {low}/255; pp)"
        if top == low:  # one setting run (e.g. -p settings 4): nothing to compare
            rows.append({"key": f"rise_{task.lower()}", "claim": claim, "ours": "n/a", "paper": "n/a",
                         "verdict": "cannot decide: one anchor setting only (e.g. -p settings 4,16)"})
        else:
            d = paired_diff(study, top, low, task, "robust")
            paper = round(_paper(name, top, task, "rob") - _paper(name, low, task, "rob"), 1)
            rows.append({"key": f"rise_{task.lower()}", "claim": claim, "ours": d.fmt(1), "paper": f"{paper:+.1f}",
                         "verdict": judge(d, paper)})
        d = paired_diff(study, top, None, task, "robust")
        paper = round(_paper(name, top, task, "rob") - _paper(name, None, task, "rob"), 1)
        rows.append({"key": f"gain_{task.lower()}", "claim": f"R-Adapt+ ({top}/255) raises robust {task} over no defense (pp)",
                     "ours": d.fmt(1), "paper": f"{paper:+.1f}", "verdict": judge(d, paper)})
    for task in TASKS:
        worst = min((s for s in study.settings() if s is not None),
                    key=lambda s: study.accuracy(s, task, "clean").low)
        est = wilson_clean(study, worst, task)
        rows.append({"key": f"clean_{task.lower()}", "claim": f"clean {task} stays >= {CLEAN_FLOOR:g} % at every setting "
                     f"(worst: {worst}/255; %, Wilson)", "ours": est.fmt(1),
                     "paper": f"{min(_paper(name, s, task, 'clean') for s in release.SETTINGS):.1f}",
                     "verdict": clean_verdict(est)})
    return pd.DataFrame(rows).set_index("key")


def wilson_clean(study: LvlmStudy, setting: int, task: str) -> stats.Estimate:
    """Clean accuracy with a Wilson interval (a bootstrap interval is degenerate at 100 %)."""
    table = study.results[setting].clean
    answers = table[0] if task == "CAP" else table[1:].ravel()
    return stats.wilson(int(answers.sum()), int(answers.size))


def glue_values(study: LvlmStudy, claim_table: pd.DataFrame) -> dict:
    prefix = PAPER[study.model_name][3]
    values = {f"{prefix}_{k}_ours": row["ours"] for k, row in claim_table.iterrows()}
    values.update({f"{prefix}_{k}_paper": row["paper"] for k, row in claim_table.iterrows()})
    values.update({f"{prefix}_{k}_verdict": row["verdict"] for k, row in claim_table.iterrows()})
    for setting in study.settings():
        tag = "none" if setting is None else f"eps{setting}"
        for task in TASKS:
            for which in ("clean", "robust"):
                values[f"{prefix}_{tag}_{task.lower()}_{which}"] = study.accuracy(setting, task, which).fmt(1)
    values[f"{prefix}_n_images"], values[f"{prefix}_screened"] = len(study.vqa), study.vqa.screened
    return values


def protocol(study: LvlmStudy) -> str:
    a = study.attack
    paper_model, paper_table = PAPER[study.model_name][:2]
    screened = ("unscreened" if "unscreened" in study.vqa.source else
                f"the first {len(study.vqa)} of {study.vqa.screened} screened, in seeded order, whose clean caption and "
                f"{len(study.vqa.questions)} answers all name the object")
    return (f"Protocol ({paper_table}, {paper_model}'s role: {study.model_name}): n = {len(study.vqa)} {study.vqa.source} "
            f"images ({screened}), one caption and {len(study.vqa.questions)} questions each; V-Attack eps {a.eps * 255:.0f}/255, {a.steps} steps of {a.step_size * 255:.0f}/255, values of the last "
            f"{a.blocks} blocks, target = the nearest other class; white-box, end to end through each row's own model; "
            f"accuracy = share of answers naming the original object; 95 % bootstrap CIs over images (VQA: an image's "
            f"questions resampled together; differences paired), Wilson intervals for the clean floor.")


def examples_frame(study: LvlmStudy, setting: int | None = None) -> pd.DataFrame:
    """Fig. 6's text: per example image and prompt, the answers clean / V-Attack undefended / V-Attack on `setting`."""
    setting = max(s for s in study.settings() if s is not None) if setting is None else setting
    none, plus = study.results[None].examples, study.results[setting].examples
    prompts = (study.vqa.caption_prompt, *study.vqa.questions)
    rows = []
    for i in range(len(none["clean"][0])):
        for p, prompt in enumerate(prompts):
            rows.append({"image": i, "object -> target": f"{study.vqa.objects[i]} -> {study.vqa.targets[i]}",
                         "prompt": prompt, "clean": none["clean"][p][i], "attacked, no defense": none["attacked"][p][i],
                         f"attacked, R-Adapt+ ({setting}/255)": plus["attacked"][p][i]})
    return pd.DataFrame(rows).set_index(["image", "object -> target", "prompt"])


def plot_examples(study: LvlmStudy, setting: int | None = None):
    """Fig. 6-style: each example image clean, V-Attacked undefended and V-Attacked through R-Adapt+, with the captions."""
    from .. import plots

    setting = max(s for s in study.settings() if s is not None) if setting is None else setting
    none, plus = study.results[None].examples, study.results[setting].examples
    n = len(none["clean"][0])
    fig, axes = plots.figure(ncols=3, nrows=n, width=2.7, height=2.6)
    panels = (("clean", study.vqa.images, none["clean"]), ("V-Attack, no defense", none["adversarial"], none["attacked"]),
              (f"V-Attack, R-Adapt+ ({setting}/255)", plus["adversarial"], plus["attacked"]))
    for i in range(n):
        for ax, (title, images, answers) in zip(axes[i], panels):
            ax.imshow(images[i].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_title(f"{title}\n\"{answers[0][i]}\"", fontsize=7, fontweight="normal")
            ax.axis("off")
    fig.tight_layout()
    return fig


def plot_accuracy(study: LvlmStudy):
    """CAP and VQA accuracy (95 % CI bars), clean and robust, per row, beside the paper's values (hollow markers)."""
    from .. import plots

    fig, axes = plots.figure(ncols=2, width=4.2, height=3.4)
    labels = ["none" if s is None else f"{s}/255" for s in study.settings()]
    for ax, task in zip(axes[0], TASKS):
        for k, (which, paper_key, color) in enumerate((("clean", "clean", "C0"), ("robust", "rob", "C3"))):
            est = [study.accuracy(s, task, which) for s in study.settings()]
            x = np.arange(len(est)) + (k - 0.5) * 0.2
            ax.errorbar(x, [e.mean for e in est], yerr=[[e.mean - e.low for e in est], [e.high - e.mean for e in est]],
                        fmt="o", color=color, capsize=2, label=f"ours, {which}")
            paper = [_paper(study.model_name, s, task, paper_key) for s in study.settings()]
            ax.scatter(x, paper, facecolors="none", edgecolors=color, marker="s", label=f"paper, {which}")
        ax.set(xticks=np.arange(len(labels)), xticklabels=labels, xlabel="R-Adapt+ anchor's training eps",
               ylabel=f"{task} accuracy (%)", ylim=(-2, 102), title=task)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{study.model_name} ({PAPER[study.model_name][0]}'s role) under V-Attack", fontsize=10)
    fig.tight_layout()
    return fig


def study_of(studies: dict[str, LvlmStudy], paper_table: str) -> LvlmStudy | None:
    """The study whose LVLM plays `paper_table`'s model ("Table 5" or "Table 11"), or None when the page ran none."""
    return next((s for name, s in studies.items() if PAPER[name][1] == paper_table), None)


def _clean_correct(model: VisionLanguageModel, vqa: VqaSet) -> np.ndarray:
    from ..lvlm import protocol

    x = vqa.images.float().div(255)
    answers = protocol.answer_all(model, x, protocol.prompts_of(vqa.caption_prompt, vqa.questions))
    return protocol.correctness(answers, vqa.objects)


def clean_parts(study: LvlmStudy, setting: int | None = None, d0s=(40.0, 80.0, 160.0)) -> pd.DataFrame:
    """Where R-Adapt+'s clean cost comes from (no attack): the filter alone at D0 40 (the paper's, scaled to the
    encoder's input) and milder cutoffs, each anchor alone (white-image, trained), and the trained anchor with each D0."""
    if study.model_name not in PROFILE_LVLMS["mini"]:
        raise ValueError(f"clean_parts reads the released anchors of the mini LVLMs, not {study.model_name}'s")
    setting = max(s for s in study.settings() if s is not None) if setting is None else setting
    cfg = release.anchor_config(setting)
    trained = release.load_anchor(study.model_name, setting)
    m = study.model
    rows = {f"GIF only, D0 = {d:g}": m.defended(None, 1.0, 0.0, d) for d in d0s}
    rows["white-image anchor only (no GIF)"] = m.defended(m.white_anchor(), cfg.alpha, cfg.beta, None)
    rows[f"trained anchor ({setting}/255) only (no GIF)"] = m.defended(trained, cfg.alpha, cfg.beta, None)
    rows.update({f"R-Adapt+ ({setting}/255), D0 = {d:g}" + (" (the row above)" if d == cfg.d0_224 else ""):
                 m.defended(trained, cfg.alpha, cfg.beta, d) for d in d0s})
    out = {}
    for name, model in rows.items():
        table = _clean_correct(model, study.vqa)
        out[name] = {"CAP clean": stats.wilson(int(table[0].sum()), table.shape[1]).fmt(1),
                     "VQA clean": stats.wilson(int(table[1:].sum()), table[1:].size).fmt(1)}
    return pd.DataFrame.from_dict(out, orient="index").rename_axis("variant (clean, no attack; Wilson 95 % CI)")


def milder_filter(study: LvlmStudy, d0_224: float = 160.0, setting: int | None = None) -> pd.DataFrame:
    """The highest setting's anchor deployed with a milder cutoff, attacked like every row (cached, released): does
    the clean accuracy a milder filter buys cost the robustness? Beside the row with the paper's D0."""
    setting = max(s for s in study.settings() if s is not None) if setting is None else setting
    cfg = release.anchor_config(setting)
    model = study.model.defended(release.load_anchor(study.model_name, setting), cfg.alpha, cfg.beta, d0_224)
    ident = {**identity(study.model_name, setting), "d0_224": d0_224}
    label = f"R-Adapt+ ({setting}/255), D0 = {d0_224:g}"
    milder = evaluate_lvlm(model, label, ident, study.vqa, study.attack, progress=False)
    rows = {}
    for name, result in ((f"R-Adapt+ ({setting}/255), D0 = {cfg.d0_224:g} (Table rows)", study.results[setting]),
                         (label, milder)):
        one = LvlmStudy(study.model_name, study.model, study.vqa, study.attack, {0: result})
        rows[name] = {f"{t} {w}": one.accuracy(0, t, w).fmt(1) for t in TASKS for w in ("clean", "robust")}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("filter cutoff (same trained anchor)")


def cost_values(study: LvlmStudy, parts: pd.DataFrame, milder: pd.DataFrame) -> dict[str, str]:
    """The clean-cost reading for the prose: each part's clean CAP and the milder cutoff's clean / robust CAP."""
    prefix, cap = PAPER[study.model_name][3], "CAP clean"
    gif = [i for i in parts.index if i.startswith("GIF only")]
    anchor = next(i for i in parts.index if i.startswith("trained anchor"))
    paper_row, mild_row = milder.index
    reading = (f"the filter alone keeps {parts.loc[gif[0], cap]} % of the clean captions at {gif[0].split(', ')[1]} and "
               f"{parts.loc[gif[-1], cap]} % at {gif[-1].split(', ')[1]}; the trained anchor alone {parts.loc[anchor, cap]} %. "
               f"With the same anchor and {mild_row.split(', ')[-1]}, clean CAP is {milder.loc[mild_row, 'CAP clean']} % and "
               f"robust CAP {milder.loc[mild_row, 'CAP robust']} % (the paper's D0: {milder.loc[paper_row, 'CAP clean']} and "
               f"{milder.loc[paper_row, 'CAP robust']} %)")
    return {f"{prefix}_cost_reading": reading}


def reading(study: LvlmStudy, claim_table: pd.DataFrame) -> dict[str, str]:
    """One computed sentence per LVLM from its claims' intervals (never their point estimates)."""
    prefix = PAPER[study.model_name][3]

    def low(key: str) -> float:
        text = claim_table.loc[key, "ours"]
        return float(text.split("[")[1].split(",")[0]) if "[" in text else float("nan")

    gain = ("restores part of the answers V-Attack takes away" if min(low("gain_cap"), low("gain_vqa")) > 0
            else "does not measurably restore the answers V-Attack takes away on both tasks")
    size = ("less than the paper reports" if all("smaller" in claim_table.loc[k, "verdict"] for k in ("gain_cap", "gain_vqa"))
            else "see the claims table for its size against the paper's")
    rise = ("robustness rises with the anchor's training eps" if min(low("rise_cap"), low("rise_vqa")) > 0
            else "a rise of robustness with the anchor's training eps is not resolved on both tasks (a CI holds 0 or less)")
    floor = ("the 98 % clean floor is met" if all(claim_table.loc[k, "verdict"].startswith("met") for k in ("clean_cap", "clean_vqa"))
             else "the 98 % clean floor is not met on both tasks")
    return {f"{prefix}_reading": f"R-Adapt+ {gain}, {size}; {rise}; {floor}"}
