"""docs/HYPERPARAMETER_TUNING.md from the tuning JSON (its tables rendered by tune/render.py).

Every figure comes from training_results.json / advanced_techniques.json; the prose is the guide's template,
docs/templates/HYPERPARAMETER_TUNING.md.
"""

from __future__ import annotations

from pathlib import Path

from fraudtune import paths
from fraudtune.files import read_json, write_text_atomic
from fraudtune.guides import fill_template
from fraudtune.tune.render import results_markdown, techniques_markdown

TEMPLATE = "HYPERPARAMETER_TUNING.md"  # in docs/templates/, named as the guide it renders
NOT_MEASURED = "## {what}\n\nNot measured yet: run `fraudtune tune --config configs/grid.yaml{flag}`.\n"


def write_tuning_doc(
    results_json_path: Path, techniques_json_path: Path | None = None, out_path: Path | None = None
) -> Path:
    """docs/HYPERPARAMETER_TUNING.md from the two JSON files (either may be absent: its section says so).

    Also accepts `(run_dir, out_path)`: the JSON files are then read from the run directory.
    """
    if out_path is None:
        run_dir, out_path = Path(results_json_path), Path(techniques_json_path)
        results_json_path, techniques_json_path = run_dir / paths.TRAINING_RESULTS_JSON, run_dir / paths.ADVANCED_JSON
    results = read_json(results_json_path) if Path(results_json_path).exists() else None
    tech = read_json(techniques_json_path) if techniques_json_path and Path(techniques_json_path).exists() else None
    text = fill_template(
        TEMPLATE,
        search=results_markdown(results, level=2) if results else NOT_MEASURED.format(what="search", flag=""),
        techniques=(
            techniques_markdown(tech, level=2) if tech else NOT_MEASURED.format(what="techniques", flag=" --techniques")
        ),
    )
    write_text_atomic(Path(out_path), text)
    return Path(out_path)
