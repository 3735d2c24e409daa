"""`fraudtune study`: settings trained and judged on one test set, resumable, with the table and the chart."""

from __future__ import annotations

import json

import pytest
from spec_oracle import DOCUMENTED, HISTORICAL, read_jsonl, spec_flags, spec_generic_score

from fraudtune import paths
from fraudtune.cli import main
from fraudtune.config import with_overrides

SETTINGS = {
    "small": ["data.n=40", "train.epochs=1", "lora.top_layers=1"],
    "more-rules": ["data.n=40", "data.rule_min=2", "train.epochs=1"],
}


def test_study_trains_each_setting_and_judges_all_on_one_test_set(tiny_cfg, tmp_path, capsys):
    cfg = with_overrides(tiny_cfg, ["study.test_n=60", "study.fit_n=20"])
    cfg.study.settings = SETTINGS
    config = tmp_path / "study.yaml"
    config.write_text(json.dumps(cfg.model_dump(mode="json")))  # JSON is YAML
    run_dir = tmp_path / "study"
    assert main(["study", "--config", str(config), "--run-dir", str(run_dir)]) == 0
    table = capsys.readouterr().out
    assert "| small | 32 |" in table and "| more-rules |" in table
    assert "## Borderline accuracy per generic score (FRAUD iff >= 50)" in table
    from fraudtune.runmeta import cpu_info

    assert f"(trained on {cpu_info()['model']}, {cpu_info()['cores']} cores" in table  # train times need the CPU

    # the frozen layers' output of the top-layers setting is kept for any later setting on the same rows
    assert list((run_dir / paths.STUDY_FROZEN_STORE).glob("*.safetensors"))
    summary = json.loads((run_dir / paths.STUDY_JSON).read_text())
    assert (run_dir / paths.STUDY_CHART).stat().st_size > 10_000 and (run_dir / paths.STUDY_MD).exists()
    test = read_jsonl(run_dir / paths.STUDY_TEST_DIR / paths.DATASET_META)
    assert summary["test"]["n"] == len(test) == 60
    small, more = summary["settings"]["small"], summary["settings"]["more-rules"]
    assert small["n_train"] == 32 and more["n_train"] > 32  # the per-rule minimum adds rows
    for name, result in (("small", small), ("more-rules", more)):
        assert result["test_n"] == 60 and result["overlap_dropped"] == 0
        for model in ("fine_tuned", "gradient_boosting"):
            rule_only = result[model]["slices"]["rule_only"]
            # independent count: rows where a company rule fires while the generic score stays under 50
            expected = sum(
                1
                for t in (m["transaction"] for m in test)
                if set(spec_flags(t)) & (set(DOCUMENTED) | set(HISTORICAL)) and spec_generic_score(t) < 50
            )
            assert rule_only["n"] == expected > 0
            assert 0 <= result[model]["accuracy"] <= 1
        # the per-row predictions kept beside the result agree with it; borderline accuracy split per generic score
        lines = read_jsonl(run_dir / name / paths.STUDY_PREDICTIONS)
        assert [r["transaction_id"] for r in lines] == [m["transaction_id"] for m in test]
        assert [r["truth"] for r in lines] == [m["label"] for m in test]
        assert [r["red_flags"] for r in lines] == [m["red_flags"] for m in test]
        assert all("evidence" in r for r in lines)  # an evidence-first answer's text kept: its steps can be traced
        hits = sum(r["label"] == r["truth"] for r in lines)
        assert hits == round(result["fine_tuned"]["accuracy"] * 60)
        border = [(r["generic_score"], r["label"] == r["truth"]) for r in lines if r["category"] == "borderline"]
        by_score = result["fine_tuned"]["borderline_by_score"]
        assert sum(cell["n"] for cell in by_score.values()) == len(border) > 0
        for score, cell in by_score.items():
            mine = [ok for g, ok in border if g == int(score)]
            assert cell["n"] == len(mine) and abs(cell["accuracy"] - sum(mine) / len(mine)) < 1e-9
        b, c = result["mcnemar_vs_gradient_boosting"]["b"], result["mcnemar_vs_gradient_boosting"]["c"]
        assert 0 <= b + c <= 60
        # judged on its own training rows too, every company-specific one first
        fit = result["train_fit"]
        train_metas = read_jsonl(run_dir / name / paths.DATA_DIR / "train.meta.jsonl")
        company = sum(m["category"] == "company_specific" for m in train_metas)
        assert fit["n"] == 20 and fit["company_specific_n"] == min(company, 20) > 0
        assert sum(fit["slices"][c]["n"] for c in ("clear_fraud", "clear_legitimate", "borderline")) == 20 - min(
            company, 20
        )

    # --finished-only reports what is judged and lists the rest as pending, training nothing
    cfg.study.settings = {**SETTINGS, "later": ["data.n=48", "train.epochs=1"]}
    config.write_text(json.dumps(cfg.model_dump(mode="json")))
    assert main(["study", "--config", str(config), "--run-dir", str(run_dir), "--finished-only"]) == 0
    assert "- `later` (not trained yet): `data.n=48 train.epochs=1`" in capsys.readouterr().out
    assert not (run_dir / "later").exists()
    assert json.loads((run_dir / paths.STUDY_JSON).read_text())["pending"] == {"later": ["data.n=48", "train.epochs=1"]}
    # --only trains the named settings and no others; an unknown name is refused
    assert main(["study", "--config", str(config), "--run-dir", str(run_dir), "--only", "small"]) == 0
    assert not (run_dir / "later").exists() and "`later` (not trained yet)" in capsys.readouterr().out
    assert main(["study", "--config", str(config), "--run-dir", str(run_dir), "--only", "nope"]) == 1
    assert "study --only: no setting ['nope']" in capsys.readouterr().err
    cfg.study.settings = SETTINGS
    config.write_text(json.dumps(cfg.model_dump(mode="json")))

    # a result judged before the training-fit measurement existed gets it from the saved adapter, untrained
    stored = json.loads((run_dir / "small" / paths.STUDY_RESULT).read_text())
    fit = stored.pop("train_fit")
    (run_dir / "small" / paths.STUDY_RESULT).write_text(json.dumps(stored))
    assert main(["study", "--config", str(config), "--run-dir", str(run_dir), "--finished-only"]) == 0
    assert json.loads((run_dir / "small" / paths.STUDY_RESULT).read_text())["train_fit"] == fit
    capsys.readouterr()

    # resumable: a second call trains nothing and reads every setting back
    adapter = run_dir / "small" / paths.ADAPTER_DIR / "adapter_model.safetensors"
    before = adapter.stat().st_mtime_ns
    (run_dir / paths.STUDY_JSON).unlink()
    assert main(["study", "--config", str(config), "--run-dir", str(run_dir)]) == 0
    assert adapter.stat().st_mtime_ns == before
    assert json.loads((run_dir / paths.STUDY_JSON).read_text())["settings"] == summary["settings"]

    # the folder of a setting lost (another machine): --prior reports it from the earlier summary, untrained
    prior = tmp_path / "prior.json"
    prior.write_text((run_dir / paths.STUDY_JSON).read_text())
    import shutil

    shutil.rmtree(run_dir / "small")
    capsys.readouterr()
    args = ["study", "--config", str(config), "--run-dir", str(run_dir), "--finished-only", "--prior", str(prior)]
    assert main(args) == 0
    assert f"read from {prior}" in capsys.readouterr().out and not (run_dir / "small").exists()
    carried = json.loads((run_dir / paths.STUDY_JSON).read_text())["settings"]
    assert list(carried) == ["small", "more-rules"] and carried["small"]["carried_from"] == str(prior)
    assert {k: v for k, v in carried["small"].items() if k != "carried_from"} == summary["settings"]["small"]


def test_study_refuses_a_test_seed_equal_to_a_training_seed(tiny_cfg, tmp_path, capsys):
    config = tmp_path / "study.yaml"
    raw = tiny_cfg.model_dump(mode="json")
    raw["study"]["settings"] = {"a": [f"data.seed={raw['eval']['test_seed']}"]}
    config.write_text(json.dumps(raw))
    assert main(["study", "--config", str(config), "--run-dir", str(tmp_path / "s")]) == 1
    assert "eval.test_seed (1007) is a setting's data.seed" in capsys.readouterr().err


def test_a_killed_scoring_pass_continues_after_its_last_chunk(tmp_path, monkeypatch):
    from fraudtune import study as study_module

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"weights one")
    rows = [{"transaction_id": f"T{i}", "transaction": {"amount": i}} for i in range(7)]
    calls: list[list[int]] = []

    class Scorer:
        def __init__(self, fail_after: int | None = None) -> None:
            self.fail_after = fail_after

        def score(self, transactions, batch_size, progress=False):
            if self.fail_after is not None and len(calls) == self.fail_after:
                raise KeyboardInterrupt
            calls.append([t["amount"] for t in transactions])
            return [{"label": "FRAUD" if t["amount"] % 2 else "LEGITIMATE", "p": t["amount"]} for t in transactions]

    monkeypatch.setattr(study_module, "SCORING_CHUNK", 3)
    partial = tmp_path / "partial.jsonl"
    with pytest.raises(KeyboardInterrupt):
        study_module.score_resumable(Scorer(fail_after=2), adapter, rows, 4, partial)
    assert calls == [[0, 1, 2], [3, 4, 5]]
    records, seconds = study_module.score_resumable(Scorer(), adapter, rows, 4, partial)
    assert calls[-1] == [6]  # only the chunk the kill left
    assert [r["p"] for r in records] == list(range(7)) and seconds >= 0
    # answers of another adapter are not reused
    (adapter / "adapter_model.safetensors").write_bytes(b"weights two")
    study_module.score_resumable(Scorer(), adapter, rows, 4, partial)
    assert calls[-3:] == [[0, 1, 2], [3, 4, 5], [6]]


def test_prior_results_are_reported_without_training_again(tmp_path, capsys):
    """A study folder lost with its machine: settings judged before come from the earlier knowledge_study.json
    (same overrides), settings whose overrides changed are trained again, the rest stay pending."""
    from fraudtune.errors import FraudtuneError
    from fraudtune.study import prior_results

    def result(overrides):
        slices = {s: {"accuracy": 0.5, "n": 2} for s in ("clear_fraud", "clear_legitimate", "borderline")}
        return {"overrides": overrides, "train_commit": "abcdef0123", "fine_tuned": {"slices": slices}}

    prior = tmp_path / "knowledge_study.json"
    prior.write_text(json.dumps({"settings": {"a": result(["x=1"]), "b": result(["y=1"]), "gone": result([])}}))
    kept = prior_results(prior, {"a": ["x=1"], "b": ["y=2"], "c": []})
    assert list(kept) == ["a"] and kept["a"]["carried_from"] == str(prior)  # b changed, gone is not in the config
    with pytest.raises(FraudtuneError, match="no such file"):
        prior_results(tmp_path / "missing.json", {})
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(FraudtuneError, match="not a knowledge_study.json"):
        prior_results(tmp_path / "bad.json", {})
