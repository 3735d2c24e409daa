"""The guides' prose lives in docs/templates/: every placeholder gets a value, and a missing template is one line."""

from __future__ import annotations

import re

import pytest
from conftest import tiny_config
from fake_run import make_fake_run

from fraudtune import guides as render
from fraudtune.cli import main
from fraudtune.errors import FraudtuneError
from fraudtune.report.charts import Charts
from fraudtune.report.docs import write_docs
from fraudtune.report.runfiles import load_run

LEFT_OVER = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")  # `$name` or `${name}`; dollar amounts start with a digit


@pytest.fixture(scope="module")
def guides(tmp_path_factory) -> dict[str, str]:
    """Every guide `fraudtune report --docs` writes, for a run with every result and for a run with none."""
    root = tmp_path_factory.mktemp("guides")
    out = {}
    for name, parts in (("full", ("train", "eval", "forgetting", "roi", "tune")), ("empty", ())):
        run = load_run(make_fake_run(root / name, parts=parts))
        for path in write_docs(tiny_config(), run, Charts(), root / f"docs-{name}"):
            out[f"{name}/{path.name}"] = path.read_text(encoding="utf-8")
    return out


def test_every_template_renders_a_guide_without_a_placeholder_left(guides):
    assert {name.split("/")[1] for name in guides} == {p.name for p in render.TEMPLATES_DIR.glob("*.md")}
    left = {name: LEFT_OVER.findall(text) for name, text in guides.items() if LEFT_OVER.search(text)}
    assert left == {}


def test_a_template_and_its_values_must_match(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "TEMPLATES_DIR", tmp_path)
    (tmp_path / "T.md").write_text("Costs $$5 a ${unit}: $known\n")
    assert render.fill_template("T.md", unit="day", known="yes") == "Costs $5 a day: yes\n"
    with pytest.raises(ValueError, match=r"placeholders without a value \['unit'\], values without a placeholder \[\]"):
        render.fill_template("T.md", known="yes")
    with pytest.raises(ValueError, match=r"values without a placeholder \['extra'\]"):
        render.fill_template("T.md", unit="day", known="yes", extra="lost")
    (tmp_path / "T.md").write_text("Costs $5\n")
    with pytest.raises(ValueError, match=r"write `\$\$` for a dollar sign"):
        render.fill_template("T.md")


def test_a_missing_template_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    """Outside a checkout (an installed package) docs/templates/ is absent: the error names the file."""
    folder = tmp_path / "docs" / "templates"
    monkeypatch.setattr(render, "TEMPLATES_DIR", folder)
    expected = (
        "{}: guide template not found; run from a fraudtune checkout (the guides' templates are in "
        "docs/templates/, not in the installed package)"
    )
    with pytest.raises(FraudtuneError) as err:
        write_docs(tiny_config(), load_run(make_fake_run(tmp_path / "run", parts=())), Charts(), tmp_path / "out")
    assert str(err.value) == expected.format(folder / "FINETUNING_GUIDE.md")
    assert main(["roi", "--set", f"roi.doc_path={tmp_path / 'doc.md'}"]) == 1
    assert capsys.readouterr().err.strip() == "error: " + expected.format(folder / "COST_BENEFIT_ANALYSIS.md")
    assert not (tmp_path / "doc.md").exists()
