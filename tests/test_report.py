"""`fraudtune report`: charts, the dashboard page and the generated guides, from fake run files (no model)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from conftest import tiny_config
from fake_run import INJECTIONS, make_fake_run

from fraudtune import paths
from fraudtune.cli import main
from fraudtune.report import charts, docs_lora, fmt, report
from fraudtune.report.charts import make_charts
from fraudtune.report.dashboard_models import _slices_from_predictions
from fraudtune.report.docs_claims import CONFIRMED, NOT_CONFIRMED, NOT_MEASURED, seed_claims
from fraudtune.report.runfiles import RunResults, load_run

ALL_CHARTS = {
    charts.LOSS_PNG,
    charts.METRICS_PNG,
    charts.CALIBRATION_PNG,
    charts.COST_PNG,
    charts.SENSITIVITY_PNG,
    charts.COMPARISON_PNG,
}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> tuple[Path, Path]:
    """A run with every artifact, reported once with the guides (run dir, docs dir)."""
    root = tmp_path_factory.mktemp("report")
    run_dir = make_fake_run(root / "run")
    report(tiny_config(), run_dir, docs=True, docs_dir=root / "docs")
    return run_dir, root / "docs"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_report_writes_every_chart_and_the_dashboard(full_run):
    run_dir, _ = full_run
    out = run_dir / paths.REPORT_DIR
    assert {p.name for p in out.iterdir()} == ALL_CHARTS | {"dashboard.html"}
    for name in ALL_CHARTS:
        width, height = png_size(out / name)
        assert width >= 600 and height >= 400, name


@pytest.mark.parametrize(
    "parts, expected",
    [
        ((), set()),
        (("eval",), {charts.METRICS_PNG, charts.CALIBRATION_PNG, charts.COMPARISON_PNG}),
    ],
)
def test_a_chart_without_its_input_is_skipped_with_the_command_that_makes_it(tmp_path, parts, expected):
    run_dir = make_fake_run(tmp_path / "run", parts=parts)
    result = make_charts(load_run(run_dir), tmp_path / "out")
    assert set(result.written) == expected
    assert set(result.skipped) == ALL_CHARTS - expected
    assert {p.name for p in (tmp_path / "out").iterdir()} == expected
    if charts.METRICS_PNG in result.skipped:
        assert (
            result.skipped[charts.METRICS_PNG]
            == f"not measured yet: run `fraudtune evaluate --run-dir {run_dir}` (writes eval.json)"
        )


def test_report_on_a_run_without_results_says_what_to_run(tmp_path, capsys):
    run_dir = make_fake_run(tmp_path / "run", parts=())
    out = report(tiny_config(), run_dir)
    assert out == run_dir / paths.REPORT_DIR
    assert "skipped comparison_charts.png" in capsys.readouterr().out
    page = (out / "dashboard.html").read_text()
    for verb in ("evaluate", "forgetting", "tune", "roi", "train"):
        assert f"not measured yet: run `fraudtune {verb} --run-dir {run_dir}`" in page


def test_dashboard_escapes_every_value_from_the_run(full_run):
    page = (full_run[0] / paths.REPORT_DIR / "dashboard.html").read_text()
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "Tom &amp; Jerry&#x27;s &quot;Deli&quot;" in page
    assert page.count("<script>") == 1  # only the page's own hashed check script


def test_dashboard_is_self_contained(full_run):
    page = (full_run[0] / paths.REPORT_DIR / "dashboard.html").read_text()
    assert "http://" not in page and "https://" not in page
    assert page.count('src="data:image/png;base64,') == len(ALL_CHARTS)  # each chart once


def test_a_metric_a_model_does_not_have_is_a_dash(full_run):
    page = (full_run[0] / paths.REPORT_DIR / "dashboard.html").read_text()
    operations = page.split("<h3>Operations</h3>", 1)[1].split("</table>", 1)[0]
    rules_row = operations.split("Rules engine", 1)[1].split("</tr>", 1)[0]
    assert rules_row.count("<td>—</td>") == 8


def test_forgetting_of_any_inner_layout_is_rendered(tmp_path):
    run_dir = make_fake_run(tmp_path / "run", parts=())
    layout = {"general_knowledge": {"before": 0.5, "after": 0.4, "delta": -0.1, "ci": [-0.2, -0.05]}}
    layout["language"] = {"perplexity": {"before": 10.0, "after": 9.0, "ci": [-2, -0.5], "higher_is_better": False}}
    (run_dir / paths.FORGETTING_JSON).write_text(json.dumps(layout))
    page = (report(tiny_config(), run_dir) / "dashboard.html").read_text()
    section = page.split('id="forgetting"', 1)[1].split("</section>", 1)[0]
    assert "general_knowledge" in section and "worse" in section
    assert "language" in section and "perplexity" in section and "better" in section


@pytest.mark.parametrize(
    "ci, higher, expected",
    [
        ([0.01, 0.2], True, "better"),
        ([0.01, 0.2], False, "worse"),
        ([-0.3, -0.1], True, "worse"),
        ([-0.3, -0.1], False, "better"),
        ([-0.1, 0.1], True, "no clear change"),
        (None, True, "—"),
    ],
)
def test_ci_reading(ci, higher, expected):
    assert fmt.ci_reading(ci, higher) == expected


def test_slice_accuracy_counts_an_unparsed_answer_as_wrong(tmp_path):
    run = RunResults(run_dir=tmp_path)
    run.test_meta = {
        "a": {"label": "FRAUD", "category": "clear_fraud"},
        "b": {"label": "FRAUD", "category": "clear_fraud"},
        "c": {"label": "LEGITIMATE", "category": "borderline"},
    }
    run.predictions = {
        "m": [
            {"transaction_id": "a", "label": "FRAUD"},
            {"transaction_id": "b", "label": None, "error": "unparsed"},
            {"transaction_id": "c", "label": "LEGITIMATE"},
        ]
    }
    slices = _slices_from_predictions(run, "m")
    assert slices == {
        "all": (2 / 3, 3),
        "clear_fraud": (1 / 2, 2),
        "label FRAUD": (1 / 2, 2),
        "borderline": (1.0, 1),
        "label LEGITIMATE": (1.0, 1),
    }


def test_lora_arithmetic_of_the_seed_and_of_smollm2():
    assert docs_lora.full_params(4096, 4096) == 4096 * 4096 == 16_777_216
    assert docs_lora.lora_params(4096, 4096, 8) == 2 * 4096 * 8 == 65_536
    assert round(docs_lora.reduction_pct(16_777_216, 65_536), 1) == 99.6
    dims = docs_lora.SMOLLM2_135M.dims()
    assert dims["q_proj"] == (576, 9 * 64) and dims["v_proj"] == (576, 3 * 64)
    assert docs_lora.adapter_params(docs_lora.SMOLLM2_135M, 8, ["q_proj", "v_proj"]) == 30 * (
        8 * (576 + 576) + 8 * (576 + 192)
    )
    assert docs_lora.adapter_params(docs_lora.SMOLLM2_135M, 8, ["lm_head"]) is None


def test_smollm2_shape_matches_the_cached_model():
    from fraudtune.modeling.loading import SMOLLM2_CACHE_NAME, cache_dir

    folder = cache_dir() / SMOLLM2_CACHE_NAME
    if not (folder / "model.safetensors").exists():
        pytest.skip("SmolLM2 not cached yet (first `fraudtune train` on the real model caches it)")
    from safetensors import safe_open

    config = json.loads((folder / "config.json").read_text())
    shape = docs_lora.shape_from_config(config, docs_lora.SMOLLM2_135M.name)
    assert shape == docs_lora.SMOLLM2_135M
    with safe_open(folder / "model.safetensors", "pt") as weights:
        stored = {k: weights.get_slice(k).get_shape() for k in weights.keys()}  # noqa: SIM118
    counted = sum(_numel(s) for k, s in stored.items() if not (shape.tied and k == "lm_head.weight"))
    assert shape.total_params() == counted


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def test_seed_claims_against_the_fake_measurements(full_run):
    claims = {c.claim.split()[0] + str(i): c for i, c in enumerate(seed_claims(load_run(full_run[0])))}
    statuses = [c.status for c in claims.values()]
    # params 99.66% >= 99.6; F1 +17 pts; consistency 97%; language perplexity got worse; cost 61% < 67%
    assert statuses == [CONFIRMED, CONFIRMED, CONFIRMED, NOT_CONFIRMED, NOT_CONFIRMED]
    assert all(str(full_run[0]) in c.source for c in claims.values())


def test_seed_claims_are_not_measured_yet_without_results(tmp_path):
    run_dir = make_fake_run(tmp_path / "run", parts=())
    claims = seed_claims(load_run(run_dir))
    assert [c.status for c in claims] == [NOT_MEASURED] * 5
    assert claims[0].measured == f"not measured yet: run `fraudtune train --run-dir {run_dir}`"


def test_guides_are_written_with_measured_numbers(full_run):
    run_dir, docs_dir = full_run
    names = {p.name for p in docs_dir.glob("*.md")}
    assert {"FINETUNING_GUIDE.md", "LORA_EXPLAINED.md", "WEEK22_SUMMARY.md", "COST_BENEFIT_ANALYSIS.md"} <= names
    assert (docs_dir / "figures" / charts.COMPARISON_PNG).exists()
    lora = (docs_dir / "LORA_EXPLAINED.md").read_text()
    assert "| LoRA | 8 x (4096 + 4096) | 65,536 |" in lora and "99.61%" in lora
    assert "| 8 | 9,216 | 6,144 | 460,800 |" in lora
    summary = (docs_dir / "WEEK22_SUMMARY.md").read_text()
    assert f"from run `{run_dir}`" in summary and "**not confirmed**" in summary
    for text in (lora, summary, (docs_dir / "FINETUNING_GUIDE.md").read_text()):
        assert not any(bad in text for bad in INJECTIONS)


def test_report_cli_prints_the_report_folder(tmp_path, capsys):
    run_dir = make_fake_run(tmp_path / "run", parts=())
    assert main(["report", "--config", str(paths.REPO_ROOT / "configs/tiny.yaml"), "--run-dir", str(run_dir)]) == 0
    assert capsys.readouterr().out.strip().endswith(f"report: {run_dir / paths.REPORT_DIR}")


def test_report_of_a_missing_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["report", "--run-dir", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / 'nope'}: run directory not found; pass --run-dir of a run (e.g. runs/demo)"
    )


def test_the_tuning_guide_reads_the_run_first_then_the_committed_results(tmp_path):
    from fraudtune import paths
    from fraudtune.report.docs import tuning_source

    run_dir, docs_dir = tmp_path / "run", tmp_path / "docs"
    run_dir.mkdir()
    committed = docs_dir / "results" / paths.TRAINING_RESULTS_JSON
    assert tuning_source(run_dir, docs_dir, paths.TRAINING_RESULTS_JSON) == committed
    (run_dir / paths.TRAINING_RESULTS_JSON).write_text("{}")
    assert tuning_source(run_dir, docs_dir, paths.TRAINING_RESULTS_JSON) == run_dir / paths.TRAINING_RESULTS_JSON
