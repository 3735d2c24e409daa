"""fraudtune roi: the seed preset reproduces the seed's figures; the measured preset reads a run's files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fraudtune.cli import main
from fraudtune.config import load_config
from fraudtune.errors import FraudtuneError
from fraudtune.files import write_json
from fraudtune.paths import DATA_CARD, DATA_DIR, EVAL_JSON, ROI_JSON, TRAIN_SUMMARY
from fraudtune.roi import roi

# The seed's published figures: the spec (the only numbers not derived in this file).
SEED = {
    "training": 3_770,
    "prompted": 0.03,
    "tuned": 0.01,
    "break_even_requests": 188_500,
    "break_even_days": 19,
    "annual_prompted": 109_500,
    "annual_tuned": 40_270,
    "savings": 69_230,
    "savings_pct": 63,
}


def _run(tmp_path: Path, *overrides: str, run_dir: Path | None = None) -> dict:
    cfg = load_config(None, [f"roi.doc_path={tmp_path / 'doc.md'}", *overrides])
    return roi(cfg, run_dir)


def test_seed_preset_reproduces_every_seed_figure(tmp_path: Path) -> None:
    c = load_config().roi
    # Independent arithmetic from the named seed inputs.
    training = c.seed_examples * c.dataset_minutes_per_example / 60 * c.hourly_rate
    training += c.seed_train_hours * c.gpu_per_hour + c.validation_hours * c.hourly_rate
    prompted = (c.seed_prompted_prompt_tokens * c.prompted_prompt_per_1k) / 1000
    prompted += (c.seed_prompted_completion_tokens * c.prompted_completion_per_1k) / 1000
    tuned = (c.seed_finetuned_prompt_tokens * c.finetuned_prompt_per_1k) / 1000
    tuned += (c.seed_finetuned_completion_tokens * c.finetuned_completion_per_1k) / 1000
    requests = training / (prompted - tuned)
    annual_prompted = prompted * c.requests_per_day * 365
    annual_tuned = tuned * c.requests_per_day * 365 + training
    assert training == pytest.approx(SEED["training"])
    assert (prompted, tuned) == (pytest.approx(SEED["prompted"]), pytest.approx(SEED["tuned"]))
    assert requests == pytest.approx(SEED["break_even_requests"])
    assert math.ceil(SEED["break_even_requests"] / c.requests_per_day) == SEED["break_even_days"]
    assert (annual_prompted, annual_tuned) == (
        pytest.approx(SEED["annual_prompted"]),
        pytest.approx(SEED["annual_tuned"]),
    )

    seed = _run(tmp_path)["seed"]
    assert seed["training"]["total"] == SEED["training"]
    assert seed["inference"]["prompted_base"]["cost_per_request"] == SEED["prompted"]
    assert seed["inference"]["fine_tuned"]["cost_per_request"] == SEED["tuned"]
    assert seed["break_even"]["requests"] == SEED["break_even_requests"]
    assert seed["break_even"]["days_exact"] == SEED["break_even_requests"] / c.requests_per_day
    assert seed["break_even"]["days"] == SEED["break_even_days"]
    assert seed["annual"]["prompted"] == SEED["annual_prompted"]
    assert seed["annual"]["fine_tuned"] == SEED["annual_tuned"]
    assert seed["annual"]["savings"] == SEED["savings"]
    assert round(seed["annual"]["savings_pct"]) == SEED["savings_pct"]


def test_seed_check_reports_matches_and_contradictions(tmp_path: Path) -> None:
    check = _run(tmp_path)["seed_check"]
    assert check["all_match"] and all(f["match"] for f in check["figures"])
    case = check["business_case"]
    assert case["monthly_savings_recomputed"] == pytest.approx((0.30 - 0.10) * 10_000 * 30)
    assert case["monthly_savings_recomputed"] == case["monthly_savings"]
    assert case["monthly_savings_from_seed_prices"] == pytest.approx((0.03 - 0.01) * 10_000 * 30)
    assert case["price_factor"] == 10
    claim = check["claimed_reduction"]
    assert claim["confirmed_per_request"] and not claim["confirmed_annual"]
    assert claim["per_request_pct"] == pytest.approx(100 * (1 - 0.01 / 0.03))


def test_seed_doc_is_written_from_the_result(tmp_path: Path) -> None:
    result = _run(tmp_path, "roi.requests_per_day=20000")
    doc = (tmp_path / "doc.md").read_text(encoding="utf-8")
    assert f"`{result['command']}`" in doc
    assert "$219,000" in doc  # 0.03 x 20,000 x 365: the override reached the guide
    assert "## Seed reproduction" in doc and "Analysis 5: quality ROI" in doc and "Sensitivity" in doc
    assert "measured (" not in doc  # no measured column without a run


def test_overrides_flow_through(tmp_path: Path) -> None:
    result = _run(tmp_path, "roi.requests_per_day=20000", "roi.retrains_per_year=0")
    seed = result["seed"]
    assert seed["break_even"]["requests"] == SEED["break_even_requests"]
    assert seed["break_even"]["days"] == math.ceil(SEED["break_even_requests"] / 20_000)
    assert seed["annual"]["prompted"] == pytest.approx(0.03 * 20_000 * 365)
    assert seed["annual"]["fine_tuned_with_retraining"] == seed["annual"]["fine_tuned"]
    assert "--set roi.requests_per_day=20000.0" in result["command"]
    assert not result["seed_check"]["all_match"]  # the seed's annual figures assume 10K/day


@pytest.fixture
def measured_run(tmp_path: Path) -> Path:
    """A run with hand-checkable numbers: 600 examples, 30 min CPU training, 60 test transactions."""
    run = tmp_path / "run"
    write_json(run / DATA_DIR / DATA_CARD, {"n": 600})
    write_json(
        run / TRAIN_SUMMARY,
        {"train_seconds": 1800, "train_tokens": 100_000, "tokens_per_second": 55.5, "device": "cpu", "examples": 480},
    )
    models = {
        "prompted_base": _model(1500, 100, tp=10, fp=4, tn=36, fn=10, f1=0.6),
        "fine_tuned": _model(250, 50, tp=18, fp=2, tn=38, fn=2, f1=0.9) | {"latency_ms_p50": 500},
    }
    write_json(run / EVAL_JSON, {"test": {"n": 60}, "models": models})
    return run


def _model(prompt: int, completion: int, *, tp: int, fp: int, tn: int, fn: int, f1: float) -> dict:
    return {
        "prompt_tokens_per_request": prompt,
        "completion_tokens_per_request": completion,
        "f1": f1,
        "recall": tp / (tp + fn),
        "precision": tp / (tp + fp),
        "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
    }


def test_measured_preset(tmp_path: Path, measured_run: Path) -> None:
    result = _run(tmp_path, run_dir=measured_run)
    m = result["measured"]
    # 600 x 4.8 min = 48 h x $75 + 0.5 h x $0.20 (cpu) + 10 h x $75
    assert m["training"]["total"] == pytest.approx(3_600 + 0.10 + 750)
    # (1500 + 100) x $0.01 / 1000 vs (250 + 50) x $0.02 / 1000
    assert m["inference"]["prompted_base"]["cost_per_request"] == pytest.approx(0.016)
    assert m["inference"]["fine_tuned"]["cost_per_request"] == pytest.approx(0.006)
    assert m["break_even"]["requests"] == 435_010  # 4,350.10 / 0.01
    assert m["break_even"]["days"] == 44  # 43.501 days at 10K/day
    assert m["annual"]["prompted"] == pytest.approx(58_400)
    assert m["annual"]["fine_tuned"] == pytest.approx(21_900 + 4_350.10)
    q = m["quality"]
    assert (q["recall_delta"], q["fpr_delta"]) == (pytest.approx(0.9 - 0.5), pytest.approx(0.05 - 0.1))
    # 36,500 frauds/year x 0.4 x $500; 3,613,500 legit x -0.05 x $5
    assert q["fraud_loss_avoided"] == pytest.approx(7_300_000)
    assert q["review_cost_added"] == pytest.approx(-903_375)
    assert q["net_value"] == pytest.approx(8_203_375)
    hosted = m["self_hosted"]
    assert hosted["requests_per_hour"] == 7_200  # 3,600,000 ms / 500 ms
    assert hosted["cost_per_request"] == pytest.approx(0.2 / 7_200)
    assert hosted["machines"] == 1 and hosted["annual_always_on"] == pytest.approx(0.2 * 24 * 365)
    assert m["decision"]["current"]["verdict"] == "fine-tune"
    assert result["seed"]["training"]["total"] == SEED["training"]  # the seed column stays beside it
    assert json.loads((measured_run / ROI_JSON).read_text()) == json.loads(json.dumps(result))
    doc = (tmp_path / "doc.md").read_text(encoding="utf-8")
    assert f"measured (`{measured_run}`)" in doc


@pytest.mark.parametrize(
    ("missing", "command"),
    [
        (EVAL_JSON, "fraudtune evaluate --run-dir {run}"),
        (TRAIN_SUMMARY, "fraudtune train --run-dir {run}"),
        (f"{DATA_DIR}/{DATA_CARD}", "fraudtune data generate --out {run}/data"),
    ],
)
def test_missing_run_file_is_a_one_line_error(tmp_path: Path, measured_run: Path, missing: str, command: str) -> None:
    (measured_run / missing).unlink()
    with pytest.raises(FraudtuneError) as err:
        _run(tmp_path, run_dir=measured_run)
    assert str(err.value) == f"{measured_run / missing}: not found; run `{command.format(run=measured_run)}` first"


def test_measured_without_run_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FraudtuneError, match="needs --run-dir"):
        roi(load_config(None, [f"roi.doc_path={tmp_path / 'doc.md'}"]), None, preset="measured")


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["roi", "--json", "--set", f"roi.doc_path={tmp_path / 'doc.md'}"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["preset"] == "seed" and result["seed_check"]["all_match"]
    assert result["seed"]["training"]["total"] == SEED["training"]


def test_cli_measured_and_missing_file(tmp_path: Path, measured_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "doc.md"
    assert main(["roi", "--run-dir", str(measured_run), "--set", f"roi.doc_path={doc}"]) == 0
    assert "| Training cost | $3,770 | $4,350 |" in capsys.readouterr().out
    (measured_run / EVAL_JSON).unlink()
    assert main(["roi", "--run-dir", str(measured_run), "--set", f"roi.doc_path={doc}"]) == 1
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_cli_set_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["roi", "--json", "--set", f"roi.doc_path={tmp_path / 'doc.md'}", "--set", "roi.requests_per_day=40000"]
    assert main(argv) == 0
    seed = json.loads(capsys.readouterr().out)["seed"]
    assert seed["break_even"]["days"] == math.ceil(SEED["break_even_requests"] / 40_000)
    assert seed["annual"]["prompted"] == pytest.approx(SEED["prompted"] * 40_000 * 365)


def test_missing_eval_key_is_a_one_line_error(tmp_path: Path, measured_run: Path) -> None:
    evaluation = json.loads((measured_run / EVAL_JSON).read_text())
    evaluation["models"]["fine_tuned"]["prompt_tokens_per_request"] = None
    write_json(measured_run / EVAL_JSON, evaluation)
    with pytest.raises(FraudtuneError) as err:
        _run(tmp_path, run_dir=measured_run)
    assert str(err.value) == (
        f"{measured_run / EVAL_JSON}: models.fine_tuned.prompt_tokens_per_request is None, expected a number; "
        "rerun the stage that writes it"
    )


def test_the_seed_preset_keeps_a_guide_written_from_a_run(tmp_path: Path, measured_run: Path) -> None:
    doc = tmp_path / "doc.md"
    roi(load_config(None, [f"roi.doc_path={doc}"]), measured_run)
    measured_text = doc.read_text()
    assert "Generated by `fraudtune roi --run-dir " in measured_text
    roi(load_config(None, [f"roi.doc_path={doc}"]), None)  # the seed preset: printed, the measured guide kept
    assert doc.read_text() == measured_text
    doc.write_text("an old seed-preset guide\n")
    roi(load_config(None, [f"roi.doc_path={doc}"]), None)
    assert doc.read_text().startswith("# Cost-benefit analysis")


def test_the_demo_leaves_the_tracked_guides_alone(tmp_path, monkeypatch):
    """`make demo` writes under its run directory only: the default config names no guide for `roi` to write, and
    the demo's report stage does not regenerate the guides (that is `fraudtune report --docs`)."""
    import fraudtune.report as report_module
    from fraudtune.demo import demo
    from fraudtune.paths import REPO_ROOT

    assert load_config(REPO_ROOT / "configs" / "default.yaml").roi.doc_path is None
    calls = []
    monkeypatch.setattr(report_module, "report", lambda cfg, run_dir, **kw: calls.append(kw) or run_dir)
    import importlib

    for stage in ("fraudtune.train.train", "fraudtune.evaluate.suite.evaluate", "fraudtune.forgetting.run.forgetting",
                  "fraudtune.forgetting.suite.run_suite", "fraudtune.roi.roi"):  # fmt: skip
        module, name = stage.rsplit(".", 1)
        monkeypatch.setattr(importlib.import_module(module), name, lambda *a, **k: {})
    monkeypatch.setattr("fraudtune.demo.read_json", lambda path: {})
    monkeypatch.setattr("fraudtune.evaluate.suite.render_table", lambda result: "")
    demo(load_config(REPO_ROOT / "configs" / "default.yaml"), tmp_path / "run")
    assert calls == [{}], "the demo's report stage must not pass docs=True"
