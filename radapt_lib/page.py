"""A page's set-up in one call: validate and resolve its parameters, pin threads and seeds.

Every notebook's set-up cell is

    page = radapt_lib.page.setup("cka", profile=profile, seed=seed, models=models, datasets=datasets,
                                 n_samples=n_samples)

which returns a `Page`: the parameters checked and converted (lists parsed, None filled in from the
profile's defaults in `config.PROFILE_DEFAULTS`, eps given in 1/255 also on the library's [0, 1]
scale), the torch device, and helpers that load the page's images and classifiers with them.

Parameters arrive as a new user types them through papermill (`-p NAME VALUE` passes numbers and
strings only), so a list parameter takes a real list, a JSON / Python / YAML list string
('["animals", "vehicles"]', '[animals, vehicles]') or a comma-separated string (animals,vehicles),
and a bad value stops the page with a one-line `ParameterError` (a ValueError) that shows the right
spelling. Validation runs before anything is loaded, so a typo fails in seconds.
"""
from __future__ import annotations

import ast
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from . import attacks as _attacks
from . import config, data, reference

_UNSET: Any = object()  # a parameter the page does not have (None means "the profile's default")

# Pages by the name they pass to `setup` (the key of their default datasets in config.PROFILE_DEFAULTS).
PAGES = ("zoo", "main", "cka", "replacement", "spectral", "attention", "insensitivity", "shapley", "radapt", "retrieval",
         "lvlm", "proxy", "corruptions")
# The neighbouring works' pages (HPT-GPD, MAA) compare models of the mini zoo only: no paper-scale models of theirs.
MINI_ONLY = ("proxy", "corruptions")


class ParameterError(ValueError):
    """A page parameter that cannot be used as given; the message says how to spell it."""


def _example(name: str, items: Sequence) -> str:
    shown = [str(i) for i in list(items)[:2]]
    listed = ", ".join(json.dumps(i) if isinstance(i, str) else str(i) for i in list(items)[:2])
    return f"-p {name} {','.join(shown)} or -p {name} '[{listed}]'"


# -- parsing what papermill hands over -------------------------------------------------------------

def literal_or_text(text: str) -> Any:
    """A value written as text, as papermill's `-p` reads it: a Python literal (4, 2.5, None, [..], {..}), else the text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_list(name: str, value: Any, example: Sequence = ("animals", "vehicles")) -> list:
    """A list parameter from a list/tuple, a JSON, Python or YAML list string, or a comma-separated string.

    A single number or name is a list of one. Raises ParameterError (with the right spelling) otherwise.
    """
    how = f"write it as {_example(name, example)}"
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, str):
        text = value.strip()
        if text and text[0] in "[(":
            items = _literal_list(text)
            if items is None:
                raise ParameterError(f"{name}={value!r} is not a list: {how}")
        elif text[:1] == "{":
            raise ParameterError(f"{name}={value!r} is a mapping, not a list: {how}")
        else:
            items = [part.strip() for part in text.split(",") if part.strip()]
    elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        items = [value]
    else:
        raise ParameterError(f"{name}={value!r} is not a list: {how}")
    if not items:
        raise ParameterError(f"{name}={value!r} is empty: give at least one, e.g. {_example(name, example)}")
    return items


def _literal_list(text: str) -> list | None:
    """'["a", "b"]' (JSON), "['a', 'b']" / "('a', 'b')" (Python) or '[a, b]' (YAML flow) as a list; else None."""
    import yaml

    parsers: tuple[Callable[[str], Any], ...] = (json.loads, ast.literal_eval, yaml.safe_load)
    for parse in parsers:
        try:
            out = parse(text)
        except Exception:  # each parser has its own error types; the next one may read it
            continue
        if isinstance(out, (list, tuple)):
            return list(out)
    return None


def parse_mapping(name: str, value: Any, example: str = '{"pgd": 10, "apgd-ce": 20}') -> dict:
    """A mapping parameter (e.g. attack -> iterations) from a dict, a JSON/YAML mapping string or 'pgd:10,cw:10'."""
    how = f"write it as -p {name} '{example}' or -p {name} pgd:10,apgd-ce:20"
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, str):
        text = value.strip()
        if text[:1] == "{":
            import yaml

            for parse in (json.loads, ast.literal_eval, yaml.safe_load):
                try:
                    out = parse(text)
                except Exception:
                    continue
                if isinstance(out, dict) and out:
                    return dict(out)
            raise ParameterError(f"{name}={value!r} is not a mapping: {how}")
        out = {}
        for part in (p.strip() for p in text.split(",") if p.strip()):
            key, sep, val = part.replace("=", ":").partition(":")
            if not sep:
                raise ParameterError(f"{name}={value!r}: {part!r} has no value: {how}")
            out[key.strip()] = val.strip()
        if out:
            return out
    raise ParameterError(f"{name}={value!r} is not a mapping: {how}")


_COUNT_EXAMPLES = {"seed": 0, "n_samples": 100, "n_iter": 10, "n_queries": 200, "vit_batch": 8, "repeats": 7,
                   "n_permutations": 50}


def _as_number(value: Any) -> float | int | None:
    """A finite int or float as given, a numeric string as float; None for anything else (bools included)."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and math.isfinite(float(value)):
        return value
    return None


def check_count(name: str, value: Any, minimum: int = 1, what: str = "") -> int:
    """A whole number >= minimum (n_samples, n_iter, ...); numeric strings and whole floats are accepted."""
    number = _as_number(value)
    ok = number is not None and float(number).is_integer() and number >= minimum
    if not ok:
        what = f" ({what})" if what else ""
        example = f", e.g. -p {name} {_COUNT_EXAMPLES[name]}" if name in _COUNT_EXAMPLES else ""
        raise ParameterError(f"{name}={value!r}: use a whole number >= {minimum}{what}{example}")
    return int(number)


def check_number(name: str, value: Any, minimum: float = 0.0, strict: bool = False) -> float | int:
    """A finite number >= minimum (> minimum when strict); ints and floats come back as given, strings as float."""
    number = _as_number(value)
    ok = number is not None and (number > minimum if strict else number >= minimum)
    if not ok:
        raise ParameterError(f"{name}={value!r}: use a number {'>' if strict else '>='} {minimum:g}")
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else float(number)


def _eps_255(name: str, value: Any) -> int | float:
    try:
        return config.check_eps_255(value, name)
    except ValueError as err:
        raise ParameterError(str(err)) from None


# -- the page ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Page:
    """A page's validated parameters (None: the page has no such parameter) and its device."""

    name: str
    profile: str
    seed: int
    device: torch.device
    defaults: config.ProfileDefaults
    models: list[str] | None = None  # the paper's method names (CLIP, TeCoA, TGA, FARE)
    registry: dict[str, str] | None = None  # method -> registry model of this profile
    model_names: list[str] | None = None  # registry names (mini-clip, clip-vit-l-14, ...): the zoo page
    methods: list[str] | None = None  # Table rows (CLIP, R-Adapt_CLIP, ..., R-Adapt+)
    datasets: list[str] | None = None
    eps_255: int | float | None = None  # l-inf budget in 1/255, as the page's parameter
    eps_list_255: list | None = None
    attack: str | None = None
    attacks: dict[str, int] | None = None  # attack -> iterations
    n_samples: int | None = None
    n_iter: int | None = None
    n_queries: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # page-specific sweeps and counts (alphas, repeats, ...)

    @property
    def eps(self) -> float | None:
        """eps on the library's [0, 1] pixel scale (4 -> 4/255)."""
        return None if self.eps_255 is None else config.eps_from_255(self.eps_255)

    @property
    def eps_list(self) -> list[float] | None:
        return None if self.eps_list_255 is None else [config.eps_from_255(e) for e in self.eps_list_255]

    def __getattr__(self, key: str) -> Any:  # page-specific parameters: page.alphas, page.repeats, ...
        extra = self.__dict__.get("extra", {})
        if key in extra:
            return extra[key]
        raise AttributeError(f"{type(self).__name__} has no parameter {key!r}")

    def images(self, dataset: str | None = None, split: str = "test") -> data.ImageSet:
        """n_samples seeded images of a dataset (default: the page's first), as every page loads them."""
        return data.load_images(self.profile, dataset or self.datasets[0], self.n_samples, self.seed, split=split)

    def classifiers(self, classnames: Sequence[str], models: Sequence[str] | None = None) -> dict:
        """Zero-shot classifiers of the page's models (CLIP's text head) for one class list."""
        from .analysis import load_classifiers

        return load_classifiers(self.profile, list(models or self.models), classnames)


# Page-specific parameters `setup` accepts by keyword, and how each is checked.
def _counts(name: str, value: Any) -> list[int]:
    return [check_count(name, v) for v in parse_list(name, value, example=(125, 250))]


def _positive_numbers(name: str, value: Any) -> list:
    return [check_number(name, v, strict=True) for v in parse_list(name, value, example=(10, 20))]


def _numbers(name: str, value: Any) -> list:
    return [check_number(name, v) for v in parse_list(name, value, example=(0.5, 0.8))]


def _training_seeds(name: str, value: Any) -> list[int]:
    from .training import EXTRA_SEEDS

    if value is None or (isinstance(value, (list, tuple, str)) and str(value).strip() in ("", "[]", "()")):
        return []
    seeds = [check_count(name, v, minimum=1) for v in parse_list(name, value, example=EXTRA_SEEDS)]
    missing = [s for s in seeds if s not in EXTRA_SEEDS]
    if missing:
        raise ParameterError(f"{name}: no released replicas for seed(s) {missing}; the zoo holds seeds {list(EXTRA_SEEDS)} "
                             f"(e.g. {_example(name, EXTRA_SEEDS)}), or [] for none")
    return seeds


def _optional_count(name: str, value: Any) -> int | None:
    return None if value is None else check_count(name, value, minimum=1)


AUDITABLE = (*reference.METHODS, "GIF only", "FRA only")  # Tables 1-3 rows and Table 6's ablations


def _audited(name: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    names = [str(m) for m in parse_list(name, value, example=("FARE", "R-Adapt+"))]
    unknown = [m for m in names if m not in AUDITABLE]
    if unknown:
        raise ParameterError(f"unknown model(s) {unknown} to audit: use some of {list(AUDITABLE)}, "
                             f"e.g. {_example(name, ('FARE', 'R-Adapt+'))}, or None for every defended model")
    return names


def _lvlms(name: str, value: Any) -> list[str] | None:
    from .rtables.table5 import PROFILE_LVLMS

    if value is None:
        return None
    known = PROFILE_LVLMS["mini"] + PROFILE_LVLMS["paper"]
    names = [str(m) for m in parse_list(name, value, example=PROFILE_LVLMS["mini"])]
    unknown = [m for m in names if m not in known]
    if unknown:
        raise ParameterError(f"unknown LVLM(s) {unknown}: the mini profile has {list(PROFILE_LVLMS['mini'])}, the paper "
                             f"profile {list(PROFILE_LVLMS['paper'])} (e.g. {_example(name, PROFILE_LVLMS['mini'])}), or "
                             f"None for the profile's two")
    return names


def _anchor_settings(name: str, value: Any) -> list[int]:
    from .lvlm.release import SETTINGS

    eps = [_eps_255(name, v) for v in parse_list(name, value, example=SETTINGS)]
    missing = [e for e in eps if e not in SETTINGS]
    if missing:
        raise ParameterError(f"{name}: no released R-Adapt+ anchor trained at eps {missing}/255; Table 5's settings are "
                             f"{list(SETTINGS)} (e.g. {_example(name, SETTINGS)})")
    return eps


def _severity(name: str, value: Any) -> int:
    from .corruptions import SEVERITIES

    level = check_count(name, value)
    if level not in SEVERITIES:
        raise ParameterError(f"{name}={value!r}: corruption severities are {list(SEVERITIES)} (e.g. -p {name} 3)")
    return level


EXTRA_PARAMETERS: dict[str, Callable[[str, Any], Any]] = {
    "vit_batch": check_count, "repeats": check_count,  # cost page
    "alphas": _numbers, "d0s": _positive_numbers,  # ablations page (anchor weight, GIF cutoff at 224 px)
    "train_sizes": _counts, "train_epochs": _counts,  # training-scale page
    "training_seeds": _training_seeds,  # Table 1 page: the released seed replicas to repeat the claims with
    "n_permutations": check_count,  # head Shapley page: sampled permutations when exact Shapley is too costly
    "every_block": _optional_count,  # progressive replacement: evaluate after every k-th block (None: the profile's)
    "audited": _audited,  # adaptive-attack audit: the defended models to audit (None: rtables.audit.AUDITED)
    "probe_samples": check_count,  # trend page: images of the input-insensitivity reading
    "lvlms": _lvlms, "settings": _anchor_settings, "attack_steps": check_count,  # LVLM page (Tables 5 / 11)
    "n_transfer": check_count, "n_clean": check_count,  # HPT-GPD page: transfer-matrix images; clean-accuracy images
    "severity": _severity, "n_points": check_count,  # MAA page: the tables' corruption severity; mechanism images
}


def setup(name: str, *, profile: str, seed: int, models: Any = _UNSET, model_names: Any = _UNSET, methods: Any = _UNSET,
          datasets: Any = _UNSET, eps: Any = _UNSET, eps_list: Any = _UNSET, attack: Any = _UNSET, attacks: Any = _UNSET,
          n_samples: Any = _UNSET, n_iter: Any = _UNSET, n_queries: Any = _UNSET, **extra: Any) -> Page:
    """Validate and resolve a page's parameters, then pin threads, deterministic kernels and seeds.

    name: the page's key in `PAGES` (its default datasets per profile live in config.PROFILE_DEFAULTS).
    Pass each parameter the page has; one left out is not the page's (its field stays None), while
    datasets=None or n_iter=None mean the profile's default. eps and eps_list are in 1/255.
    """
    if name not in PAGES:
        raise ValueError(f"unknown page {name!r}: use one of {PAGES}")
    try:
        profile = config.check_profile(profile)
    except ValueError as err:
        raise ParameterError(str(err)) from None
    if profile != "mini" and name in MINI_ONLY:
        raise ParameterError(f"the {name!r} page compares the mini zoo's models only (the neighbouring works' models are "
                             f"not in the paper profile's registry): run it with -p profile mini")
    defaults = config.PROFILE_DEFAULTS[profile]
    out: dict[str, Any] = {"seed": check_count("seed", seed, minimum=0)}

    if models is not _UNSET:
        from . import models as registry

        names = registry.PROFILE_MODELS[profile]
        out["models"] = [str(m) for m in parse_list("models", models, example=("CLIP", "FARE"))]
        unknown = [m for m in out["models"] if m not in names]
        if unknown:
            raise ParameterError(f"unknown model(s) {unknown} for profile {profile!r}: use some of {list(names)}, "
                                 f"e.g. {_example('models', ('CLIP', 'FARE'))}")
        out["registry"] = {m: names[m] for m in out["models"]}
    if model_names is not _UNSET:
        from . import models as registry

        out["model_names"] = [str(m) for m in parse_list("models", model_names, example=("mini-clip", "mini-fare"))]
        for m in out["model_names"]:
            try:
                registry.check_model(m)
            except ValueError as err:
                raise ParameterError(str(err)) from None
    if methods is not _UNSET:
        out["methods"] = [str(m) for m in parse_list("methods", methods, example=("FARE", "R-Adapt+"))]
        unknown = [m for m in out["methods"] if m not in reference.METHODS]
        if unknown:
            raise ParameterError(f"unknown method(s) {unknown}: use some of {list(reference.METHODS)}, "
                                 f"e.g. {_example('methods', ('FARE', 'R-Adapt+'))}")
    if datasets is not _UNSET:
        if datasets is None:
            if name not in defaults.datasets:
                raise ValueError(f"page {name!r} has no default datasets in config.PROFILE_DEFAULTS")
            out["datasets"] = list(defaults.datasets[name])
        else:
            example = defaults.datasets.get(name) or defaults.datasets["radapt"]
            out["datasets"] = [str(d) for d in parse_list("datasets", datasets, example)]
            for d in out["datasets"]:
                try:
                    data.check_dataset(d, profile)
                except ValueError as err:
                    raise ParameterError(f"{err} (e.g. {_example('datasets', example)})") from None
    if eps is not _UNSET:
        out["eps_255"] = _eps_255("eps", eps)
    if eps_list is not _UNSET:
        out["eps_list_255"] = [_eps_255("eps_list", e) for e in parse_list("eps_list", eps_list, example=(1, 2, 4))]
    if attack is not _UNSET:
        out["attack"] = _check_attack("attack", attack)
    if attacks is not _UNSET:
        mapping = parse_mapping("attacks", attacks)
        out["attacks"] = {_check_attack("attacks", a): check_count(f"attacks[{a!r}]", it, minimum=0, what="iterations")
                          for a, it in mapping.items()}
    if n_samples is not _UNSET:
        out["n_samples"] = check_count("n_samples", n_samples, what="images per dataset")
    if n_iter is not _UNSET:
        out["n_iter"] = defaults.apgd_iter if n_iter is None else check_count("n_iter", n_iter, what="attack iterations")
    if n_queries is not _UNSET:
        out["n_queries"] = check_count("n_queries", n_queries, what="Square queries")
    checked = {}
    for key, value in extra.items():
        if key not in EXTRA_PARAMETERS:
            raise TypeError(f"setup() got an unknown parameter {key!r}: known page-specific ones are {sorted(EXTRA_PARAMETERS)}")
        checked[key] = EXTRA_PARAMETERS[key](key, value)

    device = config.setup(out["seed"])
    if profile == "paper" and config.paper_smoke():
        print(f"SMOKE RUN ({config.PAPER_SMOKE_ENV} is set): paper code path at smoke size ({config.PAPER_SMOKE_ARCH}, "
              f"tiny R-Adapt+ training, datasets {list(defaults.datasets['radapt'])}); its numbers are not results")
    return Page(name=name, profile=profile, device=device, defaults=defaults, extra=checked, **out)


def _check_attack(name: str, value: Any) -> str:
    try:
        return _attacks.check_attack(value if isinstance(value, str) else repr(value))
    except ValueError as err:
        raise ParameterError(f"{err} (e.g. -p {name} apgd-ce)" if name == "attack" else str(err)) from None
