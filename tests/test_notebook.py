"""notebooks/demo_notebook.ipynb: committed as its generator writes it (no outputs), and it runs on the tiny model."""

from __future__ import annotations

import importlib.util
import sys

import nbformat
import pytest

from fraudtune import paths

NOTEBOOK_DIR = paths.REPO_ROOT / "notebooks"
NOTEBOOK = NOTEBOOK_DIR / "demo_notebook.ipynb"
STAGES = (
    "fraudtune.data.generate",
    "fraudtune.train",
    "fraudtune.evaluate.suite",
    "fraudtune.forgetting.run",
    "fraudtune.roi",
)
# The tiny pipeline made smaller still: the test checks that the notebook runs, not what the numbers are.
SHRINK = (
    "data.n=40 train.epochs=1 eval.generation_subset=2 eval.consistency_runs=2 eval.max_new_tokens=8 "
    "eval.bootstrap=100 forgetting.fast_n=2 forgetting.max_new_tokens=4 forgetting.long_max_new_tokens=8 "
    "forgetting.corpus_max_tokens=32 forgetting.bootstrap=100"
)


def test_the_committed_notebook_is_the_generated_one_without_outputs():
    sys.path.insert(0, str(NOTEBOOK_DIR))
    try:
        import build_notebook
    finally:
        sys.path.remove(str(NOTEBOOK_DIR))
    assert NOTEBOOK.read_text(encoding="utf-8").rstrip() == nbformat.writes(build_notebook.build()).rstrip(), (
        "notebook out of date: run `python notebooks/build_notebook.py`"
    )
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and 'CONFIG = "configs/tiny.yaml"' in params[0].source


def test_the_notebook_runs_the_whole_pipeline_on_the_tiny_model(tmp_path, monkeypatch):
    missing = [m for m in STAGES if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"pipeline stages not written yet: {', '.join(missing)}")
    from nbclient import NotebookClient

    run_dir, docs_dir = tmp_path / "run", tmp_path / "docs"
    monkeypatch.setenv("FRAUDTUNE_NOTEBOOK_RUN_DIR", str(run_dir))
    monkeypatch.setenv("FRAUDTUNE_NOTEBOOK_DOCS_DIR", str(docs_dir))
    monkeypatch.setenv("FRAUDTUNE_NOTEBOOK_SET", SHRINK)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(paths.REPO_ROOT)}}
    ).execute()

    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "measured trainable = computed: True" in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1, "the combined chart is displayed"
    for name in (paths.EVAL_JSON, paths.FORGETTING_JSON, paths.ROI_JSON, paths.TRAIN_SUMMARY):
        assert (run_dir / name).exists(), name
    assert (run_dir / paths.REPORT_DIR / "dashboard.html").exists()
    assert "| measured = computed | yes |" in (docs_dir / "LORA_EXPLAINED.md").read_text()
    assert (docs_dir / "COST_BENEFIT_ANALYSIS.md").exists()
