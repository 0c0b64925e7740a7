"""Bad input as a new user types it through papermill: every case stops in the set-up cell with a
one-line error that names the valid range or the right spelling (`radapt_lib.page.setup`)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from radapt_lib import config, data, page

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def refused(match, **params):
    """setup(**params) raises a one-line ParameterError matching `match`; returns its message."""
    args = {"profile": "mini", "seed": 0, **params}
    with pytest.raises(page.ParameterError, match=match) as info:
        page.setup(args.pop("name", "main"), **args)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- eps: one unit (1/255) on every page ------------------------------------------------------------

def test_eps_is_converted_once_from_1_255():
    assert config.eps_from_255(4) == 4 / 255
    assert config.eps_from_255(0) == 0.0
    assert config.check_eps_255(4.0) == 4 and isinstance(config.check_eps_255(4.0), int)
    assert config.check_eps_255("4/255") == 4
    assert config.check_eps_255(0.5) == 0.5
    p = page.setup("main", profile="mini", seed=0, eps=4)
    assert p.eps_255 == 4 and p.eps == 4 / 255
    p = page.setup("radapt", profile="mini", seed=0, eps_list="1,2,4")
    assert p.eps_list_255 == [1, 2, 4] and p.eps_list == [1 / 255, 2 / 255, 4 / 255]


def test_eps_in_the_wrong_unit_is_refused():
    message = refused(r"looks like the \[0, 1\] pixel scale", eps=0.0157)
    assert "-p eps 4 for 4/255" in message
    refused(r"outside \[0, 255\].*-p eps 4", eps=-1)
    refused(r"outside \[0, 255\]", eps=300)
    refused("not a number", eps="four")
    refused(r"eps_list=0\.0078.*\[0, 1\] pixel scale.*-p eps_list 1,2,4 for 1, 2 and 4/255", name="radapt", eps_list=[0.0078, 4])
    with pytest.raises(ValueError, match=r"\[0, 1\] pixel scale"):
        config.eps_from_255(4 / 255)
    assert config.check_eps(4 / 255) == 4 / 255  # the library's own unit is unchanged


# -- counts ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, -5])
def test_n_samples_below_one_is_refused(n):
    message = refused(r"n_samples=-?\d+: use a whole number >= 1 \(images per dataset\)", n_samples=n)
    assert "-p n_samples 100" in message
    with pytest.raises(ValueError, match=">= 1"):
        data.seeded_subset(1000, n, seed=0)  # the library never takes "all but 5" either


def test_counts_accept_whole_numbers_only():
    assert page.setup("main", profile="mini", seed=0, n_samples="50", n_iter=20.0).n_samples == 50
    refused("n_samples=2.5", n_samples=2.5)
    refused("n_iter=0", n_iter=0)
    refused("seed=-1", seed=-1)


# -- list parameters -----------------------------------------------------------------------------------

@pytest.mark.parametrize("spelling", [
    ["animals", "vehicles"],  # a real list (the notebook's default, or papermill -y)
    '["animals", "vehicles"]',  # JSON, as -p passes it
    "['animals', 'vehicles']",  # Python
    "[animals, vehicles]",  # YAML flow
    "animals,vehicles",  # comma-separated
    " animals, vehicles ",
])
def test_list_parameters_accept_every_spelling(spelling):
    p = page.setup("radapt", profile="mini", seed=0, datasets=spelling)
    assert p.datasets == ["animals", "vehicles"]


def test_list_parameters_refuse_what_they_cannot_read():
    message = refused(r"datasets='\[animals, ' is not a list", name="radapt", datasets="[animals, ")
    assert "-p datasets animals,vehicles or -p datasets '[\"animals\", \"vehicles\"]'" in message
    refused("is empty", name="radapt", datasets="[]")
    refused("is a mapping", name="radapt", datasets='{"animals": 1}')
    # a name inside a well-formed list string is checked as a name, not iterated as characters
    refused(r"unknown mini dataset 'nope'", name="radapt", datasets='["animals", "nope"]')
    refused(r"unknown model\(s\) \['CLIPP'\].*use some of \['CLIP', 'TeCoA', 'TGA', 'FARE'\]", models="CLIP,CLIPP")


def test_other_parameters_parse_the_same_way():
    p = page.setup("radapt", profile="mini", seed=0, methods='["FARE", "R-Adapt+"]', attacks="pgd:10,apgd-ce:20",
                   alphas="0.2,0.8", d0s="[10, 40]", train_sizes="125,250")
    assert p.methods == ["FARE", "R-Adapt+"] and p.attacks == {"pgd": 10, "apgd-ce": 20}
    assert p.alphas == [0.2, 0.8] and p.d0s == [10, 40] and p.train_sizes == [125, 250]
    assert page.setup("radapt", profile="mini", seed=0, attacks='{"square": 0}').attacks == {"square": 0}
    refused(r"unknown method\(s\) \['R-Adapt'\]", name="radapt", methods="R-Adapt")
    refused(r"unknown attack 'pgdd'", name="radapt", attacks="pgdd:10")
    refused("d0s=0", name="radapt", d0s=[0, 40])
    assert page.setup("replacement", profile="mini", seed=0, every_block=None).every_block is None
    assert page.setup("replacement", profile="mini", seed=0, every_block="3").every_block == 3
    refused("every_block", name="replacement", every_block=0)


# -- unknown names and the profile's defaults --------------------------------------------------------

def test_unknown_profile_model_dataset_attack_name_the_valid_choices():
    refused(r"unknown profile 'big': use one of \('mini', 'paper'\)", profile="big")
    refused(r"unknown model\(s\) \['ViT'\] for profile 'mini'", models=["ViT"])
    refused(r"unknown paper dataset 'animals'", profile="paper", datasets=["animals"])
    refused(r"unknown attack 'autoatack'.*-p attack apgd-ce", attack="autoatack")
    refused(r"unknown model 'mini-vit'", name="zoo", model_names=["mini-vit"])


def test_none_takes_the_profile_defaults_from_one_table():
    p = page.setup("replacement", profile="mini", seed=0, datasets=None, n_iter=None)
    assert p.datasets == ["animals", "vehicles"] and p.n_iter == 10
    p = page.setup("shapley", profile="paper", seed=0, models=["FARE"], datasets=None, n_iter=None)
    assert p.datasets == ["Caltech256"] and p.n_iter == 100 and p.registry == {"FARE": "fare4-vit-l-14"}
    assert page.setup("spectral", profile="mini", seed=0).datasets is None  # a page without the parameter


def test_profile_table_agrees_with_the_r_adapt_pages():
    """rtables still keeps its own copy of these defaults; they must not drift apart (see config.PROFILE_DEFAULTS)."""
    from radapt_lib import rtables

    for profile, defaults in config.PROFILE_DEFAULTS.items():
        assert tuple(defaults.datasets["radapt"]) == tuple(rtables.DEFAULTS[profile]["datasets"])
        assert defaults.plus_train == rtables.DEFAULTS[profile]["plus_train"]
        plus = rtables.PLUS_DEFAULT[profile]
        assert {k: getattr(plus, k) for k in defaults.plus_anchor} == defaults.plus_anchor


# -- through papermill, as a user types it -------------------------------------------------------------

def test_papermill_list_string_with_an_unknown_dataset_fails_in_set_up():
    """`-p datasets '[...]'` reaches the page as a string; the page parses it and names the bad item."""
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"radapt_test_inputs_{os.getpid()}.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(NOTEBOOKS / "10_cka.ipynb"), str(out), "-k", "python3",
           "--cwd", str(NOTEBOOKS), "--no-progress-bar", "-p", "datasets", '["cifar10", "nope"]']
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    finally:
        out.unlink(missing_ok=True)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, log[-2000:]
    assert "PapermillExecutionError" in log and "ParameterError" in log, log[-2000:]
    assert "unknown mini dataset 'nope'" in log, log[-2000:]
    assert "KeyError" not in log


def test_papermill_eps_in_the_wrong_unit_fails_in_set_up(tmp_path):
    import papermill
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError) as info:
        papermill.execute_notebook(str(NOTEBOOKS / "15_head_shapley.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"eps": 0.0157}, kernel_name="python3", cwd=str(NOTEBOOKS),
                                   progress_bar=False)
    assert info.value.ename == "ParameterError"
    assert "-p eps 4 for 4/255" in info.value.evalue
