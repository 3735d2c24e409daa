"""`fraudtune report`: charts and the dashboard from a run's results, and (with docs) the guides under docs/.

This package only reads run directories (and writes RUN/report/ and docs/); no other stage imports it.
"""

from __future__ import annotations

from pathlib import Path

from fraudtune import paths
from fraudtune.config import RunConfig

__all__ = ["report"]


def report(cfg: RunConfig, run_dir: Path, docs: bool = False, docs_dir: Path | None = None) -> Path:
    """Write RUN/report/ (PNG charts + dashboard.html); with `docs`, regenerate the guides. Returns RUN/report.

    Args:
        cfg: run config (the guides read its `roi` and `tune` sections where the run has no result).
        run_dir: the run to report on; every missing result is skipped with a note, never invented.
        docs: also write the guides (FINETUNING_GUIDE.md, LORA_EXPLAINED.md, WEEK22_SUMMARY.md, ...).
        docs_dir: where the guides go (default: ./docs).
    """
    from fraudtune.report.charts import make_charts
    from fraudtune.report.dashboard import write_dashboard
    from fraudtune.report.runfiles import load_run

    run = load_run(Path(run_dir))
    out_dir = run.run_dir / paths.REPORT_DIR
    charts = make_charts(run, out_dir)
    for name, why in charts.skipped.items():
        print(f"skipped {name}: {why}")
    write_dashboard(run, charts)
    if docs:
        from fraudtune.report.docs import write_docs

        for path in write_docs(cfg, run, charts, Path(docs_dir) if docs_dir else Path("docs")):
            print(f"wrote {path}")
    return out_dir
