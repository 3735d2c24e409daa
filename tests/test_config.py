"""Config loading: every shipped YAML validates; bad keys and values give one line naming the key."""

from __future__ import annotations

import re

import pytest

from fraudtune.cli import VERBS, main
from fraudtune.config import load_config
from fraudtune.errors import FraudtuneError
from fraudtune.paths import REPO_ROOT


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "configs").rglob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    """Run configs, the issuer profile and the column mapping examples: each through its own loader."""
    if path.parent.name == "profiles":
        from fraudtune.profile import load_profile

        load_profile(path)
    elif "mapping" in path.name:
        from fraudtune.data.csv_mapping import load_mapping

        load_mapping(path)
    else:
        load_config(path)


def test_overrides_take_precedence_over_the_file():
    cfg = load_config(
        REPO_ROOT / "configs" / "default.yaml", ["lora.r=16", "train.lr=1e-4", "lora.target_modules=all-linear"]
    )
    assert (cfg.lora.r, cfg.train.lr, cfg.lora.target_modules) == (16, 1e-4, "all-linear")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lora.rank=8", "lora.rank: unknown key"),
        ("lora.r=0", "lora.r (0): Input should be greater than or equal to 1"),
        ("train.lr=-0.1", "train.lr (-0.1): Input should be greater than 0"),
        ("train.batch_size=0", "train.batch_size (0): Input should be greater than or equal to 1"),
        ("train.precision=fp8", "train.precision ('fp8')"),
        ("data.train_frac=0.95", "data.train_frac + data.val_frac"),
        ("model.name=local", "model.path is required"),
        ("nonsense", "expected section.key=value"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(FraudtuneError, match=re.escape(message)):
        load_config(None, [override])


def test_unknown_key_in_a_yaml_file_names_file_and_key(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("train:\n  epocs: 3\n")
    with pytest.raises(FraudtuneError, match=r"x.yaml: train.epocs: unknown key"):
        load_config(path)


def test_cli_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit):
        main(["-h"])
    out = capsys.readouterr().out
    assert all(verb in out for verb in VERBS)


def test_cli_config_error_exits_1_with_one_line(capsys):
    assert main(["train", "--set", "lora.r=0", "--run-dir", "/tmp/never-used"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "lora.r" in err[0]


def test_the_knowledge_recipe_is_the_study_setting_it_names():
    """configs/knowledge.yaml is the knowledge study's best setting, written out: it must not drift from it."""
    from fraudtune.config import with_overrides

    study = load_config(REPO_ROOT / "configs" / "knowledge_study.yaml")
    name = "et-all16top20-n2000-k100i25-e2-fw5"
    assert name in (REPO_ROOT / "configs" / "knowledge.yaml").read_text()
    setting = with_overrides(study, study.study.settings[name], name)
    recipe = load_config(REPO_ROOT / "configs" / "knowledge.yaml")
    for section in ("data", "model", "lora", "train"):
        assert getattr(recipe, section) == getattr(setting, section), section
