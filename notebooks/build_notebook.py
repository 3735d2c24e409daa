"""Write notebooks/demo_notebook.ipynb (no outputs) from the cells below: `python notebooks/build_notebook.py`.

The notebook calls the same functions as the CLI verbs. tests/test_notebook.py checks that the committed file is
what this script writes, then executes it on the tiny model.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOK = Path(__file__).with_name("demo_notebook.ipynb")

CELLS: list[tuple[str, str]] = [
    (
        "md",
        """# fraudtune demo: LoRA fine-tuning of SmolLM2-135M-Instruct on a card issuer's fraud knowledge

Each step calls the function behind a `fraudtune` command (`generate`, `train`, `evaluate`, `forgetting`, `roi`,
`report`), so what you see here is what the CLI does. The parameter cell picks the model:
`configs/tiny.yaml` (a tiny random Llama: the whole notebook in a minute, numbers meaningless) or
`configs/default.yaml` (the real SmolLM2-135M-Instruct: about an hour on a CPU).

Run it from the repository root. Environment variables (used by the tests) override the run folder
(`FRAUDTUNE_NOTEBOOK_RUN_DIR`), the guides' folder (`FRAUDTUNE_NOTEBOOK_DOCS_DIR`) and add config overrides
(`FRAUDTUNE_NOTEBOOK_SET="train.epochs=1 data.n=40"`).""",
    ),
    (
        "parameters",
        """CONFIG = "configs/tiny.yaml"  # "configs/default.yaml" for the real SmolLM2-135M-Instruct
OVERRIDES: list[str] = []  # `--set`-style overrides, e.g. ["train.epochs=1"]""",
    ),
    (
        "code",
        """import json
import os
from pathlib import Path

from IPython.display import Image, display

from fraudtune import paths
from fraudtune.config import load_config
from fraudtune.files import read_jsonl

cfg = load_config(Path(CONFIG), OVERRIDES + os.environ.get("FRAUDTUNE_NOTEBOOK_SET", "").split())
RUN_DIR = Path(os.environ.get("FRAUDTUNE_NOTEBOOK_RUN_DIR", f"runs/notebook-{cfg.name}"))
DOCS_DIR = Path(os.environ.get("FRAUDTUNE_NOTEBOOK_DOCS_DIR", RUN_DIR / "docs"))
cfg.roi.doc_path = DOCS_DIR / "COST_BENEFIT_ANALYSIS.md"  # the notebook never overwrites the repository's docs/
print(f"config {CONFIG}: model {cfg.model.name}, {cfg.data.n} examples, run folder {RUN_DIR}")""",
    ),
    (
        "md",
        """## 1. Data

The issuer profile (`configs/profiles/demo_issuer.yaml`) labels generated transactions: generic red flags,
the written rulebook, and historical patterns that exist only in the labels. `fraudtune data generate` does this.""",
    ),
    (
        "code",
        """from fraudtune.data.generate import generate

data_dir = RUN_DIR / paths.DATA_DIR
summary = generate(data_dir, profile_path=cfg.data.profile, n=cfg.data.n, seed=cfg.data.seed, data_cfg=cfg.data)
print(json.dumps({k: summary[k] for k in ("n", "splits", "categories", "rules")}, indent=2))

example = read_jsonl(paths.split_file(data_dir, "train"))[0]
for message in example["messages"]:
    print(f"--- {message['role']}\\n{message['content']}")""",
    ),
    (
        "md",
        """## 2. The base model

`model.name` selects it: the shipped SmolLM2-135M-Instruct (dequantised once from its GGUF and cached) or the
tiny random Llama with SmolLM2's tokenizer.""",
    ),
    (
        "code",
        """from fraudtune.modeling.loading import load_base

base_model, tokenizer = load_base(cfg.model)
base_params = sum(p.numel() for p in base_model.parameters())
c = base_model.config
print(
    f"{cfg.model.name}: {base_params:,} parameters; hidden {c.hidden_size}, {c.num_hidden_layers} layers, "
    f"{c.num_attention_heads} heads / {c.num_key_value_heads} key-value heads, vocabulary {c.vocab_size:,}"
)""",
    ),
    (
        "md",
        """## 3. LoRA configuration

LoRA freezes each target matrix W (d_in -> d_out) and trains B·A of rank r: r·(d_in + d_out) weights instead of
d_in·d_out. The count below is computed from the model's shapes; training reports the measured count.""",
    ),
    (
        "code",
        """from fraudtune.report.docs_lora import adapter_params, shape_from_config

print(cfg.lora)
shape = shape_from_config(base_model.config.to_dict(), cfg.model.name)
expected_trainable = adapter_params(shape, cfg.lora.r, cfg.lora.target_modules)
print(
    f"LoRA r={cfg.lora.r} on {cfg.lora.target_modules}: {expected_trainable:,} trainable weights "
    f"= {100 * expected_trainable / base_params:.3f}% of the {base_params:,} base weights"
)
del base_model""",
    ),
    (
        "md",
        """## 4. Training

`fraudtune train`: answer-only loss, a checkpoint per epoch, the best adapter by validation loss.""",
    ),
    (
        "code",
        """from fraudtune.train import train

train_summary = train(cfg, RUN_DIR)
print(train_summary["trainable"])
print(f"measured trainable = computed: {train_summary['trainable_params'] == expected_trainable}")
print({k: train_summary[k] for k in ("steps", "train_seconds", "best_checkpoint", "val_loss_per_epoch")})""",
    ),
    (
        "md",
        """## 5. Evaluation

`fraudtune evaluate`: the adapter against the prompted base model, the rules engine and gradient boosting on the
test split, with 95% intervals.""",
    ),
    (
        "code",
        """from fraudtune.evaluate.suite import evaluate, render_table

evaluation = evaluate(cfg, RUN_DIR)
print(render_table(evaluation))""",
    ),
    (
        "md",
        """## 6. Before and after fine-tuning

The same test transactions answered by the base model (prompted with the rulebook) and by the fine-tuned model,
then the general-skill probes of `fraudtune forgetting`.""",
    ),
    (
        "code",
        """pred_dir = RUN_DIR / paths.PREDICTIONS_DIR
base_answers, tuned_answers = (read_jsonl(pred_dir / f"{m}.jsonl") for m in ("prompted_base", "fine_tuned"))
for before, after in list(zip(base_answers, tuned_answers, strict=True))[:3]:
    tid, truth, p = before["transaction_id"], before.get("truth"), after.get("fraud_probability")
    print(f"{tid} truth {truth}: base {before.get('label')} -> fine-tuned {after.get('label')} (p(fraud) {p})")""",
    ),
    (
        "code",
        """from fraudtune.forgetting.run import forgetting

print(forgetting(cfg, RUN_DIR)["markdown"])""",
    ),
    (
        "md",
        """## 7. Cost-benefit

`fraudtune roi`: training cost, cost per request, break-even and annual cost from the measured tokens and times.""",
    ),
    (
        "code",
        """from fraudtune.roi import render_markdown, roi

print(render_markdown(roi(cfg, RUN_DIR, preset="measured")))""",
    ),
    (
        "md",
        """## 8. Charts, dashboard and guides

`fraudtune report --docs`: PNG charts and an offline dashboard in `RUN/report/`, the guides in `DOCS_DIR`.
`fraudtune dashboard --run-dir RUN` serves the dashboard on localhost.""",
    ),
    (
        "code",
        """from fraudtune.report import report

report_dir = report(cfg, RUN_DIR, docs=True, docs_dir=DOCS_DIR)
display(Image(filename=str(report_dir / "comparison_charts.png")))
print(f"dashboard: {report_dir / 'dashboard.html'}  (serve it: fraudtune dashboard --run-dir {RUN_DIR})")""",
    ),
]


def build() -> nbformat.NotebookNode:
    """The notebook object (deterministic: fixed cell ids, no outputs)."""
    cells = []
    for i, (kind, source) in enumerate(CELLS):
        if kind == "md":
            cell = new_markdown_cell(source)
        else:
            cell = new_code_cell(source)
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
        cell.id = f"cell-{i:02d}"
        cells.append(cell)
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (fraudtune venv)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main() -> None:
    nbformat.write(build(), NOTEBOOK)


if __name__ == "__main__":
    main()
