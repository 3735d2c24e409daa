"""RUN/report/dashboard.html: one static, self-contained page comparing the models; `serve` shows it on localhost.

The page needs no network: CSS is inline, charts are base64 PNGs, and its Content-Security-Policy forbids loading
anything else. Every value from the run is HTML-escaped (merchant names and model answers are untrusted text).
"""

from __future__ import annotations

import functools
import http.server
from pathlib import Path

from fraudtune import paths
from fraudtune.errors import FraudtuneError
from fraudtune.files import write_text_atomic
from fraudtune.report import dashboard_models as models
from fraudtune.report import dashboard_run as around
from fraudtune.report import fmt
from fraudtune.report.charts import COMPARISON_PNG, Charts, make_charts
from fraudtune.report.html import image, missing, note, page
from fraudtune.report.runfiles import RunResults, load_run

DASHBOARD_HTML = "dashboard.html"
SECTION_IDS = (
    "overview",
    "metrics",
    "slices",
    "confusion",
    "calibration",
    "knowledge",
    "forgetting",
    "tuning",
    "roi",
    "training",
    "charts",
    "examples",
)


def write_dashboard(run: RunResults, charts: Charts, out_path: Path | None = None) -> Path:
    """Render the page from a loaded run and its charts (atomically) and return its path."""
    out_path = Path(out_path) if out_path else run.run_dir / paths.REPORT_DIR / DASHBOARD_HTML
    written = charts.written
    sections = [
        ("overview", "Overview", _overview(run, charts)),
        ("metrics", "Model metrics", models.metrics_section(run, written)),
        ("slices", "Per-slice accuracy", models.slices_section(run)),
        ("confusion", "Confusion matrices", models.confusion_section(run)),
        ("calibration", "Calibration", models.calibration_section(run, written)),
        ("knowledge", "Company knowledge and edge cases", models.knowledge_section(run)),
        ("forgetting", "Forgetting: before vs after fine-tuning", around.forgetting_section(run)),
        ("tuning", "Hyperparameter tuning", around.tuning_section(run, written)),
        ("roi", "Cost-benefit (ROI)", around.roi_section(run, written)),
        ("training", "Training", around.training_section(run, written)),
        ("charts", "All charts", _charts(run, charts)),
        ("examples", "Example transactions", around.examples_section(run)),
    ]
    assert tuple(s[0] for s in sections) == SECTION_IDS
    base = ((run.config or {}).get("model") or {}).get("name", "?")
    subtitle = f"run {run.run_dir.name} · base model {base} · {run.run_dir}"
    write_text_atomic(out_path, page("fraudtune: model comparison", subtitle, sections))
    return out_path


def build(run_dir: Path) -> Path:
    """Charts + dashboard for a run directory (what `fraudtune report` does without --docs)."""
    run = load_run(run_dir)
    charts = make_charts(run, run.run_dir / paths.REPORT_DIR)
    return write_dashboard(run, charts)


def serve(run_dir: Path, port: int = 8765) -> None:
    """Serve RUN/report/ on http://127.0.0.1:<port>/dashboard.html until Ctrl-C (built first if missing).

    Bound to 127.0.0.1 only: the page holds transaction data and must not be reachable from the network.
    """
    run_dir = Path(run_dir)
    page_path = run_dir / paths.REPORT_DIR / DASHBOARD_HTML
    if not page_path.exists():
        build(run_dir)
    handler = functools.partial(_QuietHandler, directory=str(page_path.parent))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        raise FraudtuneError(f"port {port}: cannot listen ({exc.strerror}); pass --port with a free port") from exc
    url = f"http://127.0.0.1:{server.server_address[1]}/{DASHBOARD_HTML}"
    print(f"dashboard: {url}  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static files without a log line per request."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
        return


def _overview(run: RunResults, charts: Charts) -> str:
    meta = run.meta or {}
    card = run.data_card or {}
    facts = [
        f"Run directory: {run.run_dir}",
        f"Created: {meta.get('created_at', '—')} · git {str(meta.get('git_sha', '—'))[:12]} · "
        f"status {meta.get('status', '—')}",
        f"Data: {card.get('n', '—')} examples ({fmt.splits(card.get('splits'))})",
        f"Models evaluated: {', '.join(models.name(m) for m in run.models()) or 'none yet'}",
    ]
    skipped = [f"{name}: {why}" for name, why in charts.skipped.items()]
    return "".join(note(f) for f in facts) + "".join(missing(s) for s in skipped)


def _charts(run: RunResults, charts: Charts) -> str:
    if COMPARISON_PNG not in charts.written:
        return missing(charts.skipped.get(COMPARISON_PNG, "no charts"))
    return image(charts.written[COMPARISON_PNG], "all charts of the run")
