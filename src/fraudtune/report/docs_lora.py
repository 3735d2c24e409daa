"""docs/LORA_EXPLAINED.md: LoRA's mechanics with every parameter count computed here, and the run's measured count.

Counts follow from the shapes: a d_in -> d_out linear layer has d_in * d_out weights; its LoRA adapter of rank r
has A (r x d_in) and B (d_out x r), r * (d_in + d_out) weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraudtune import paths
from fraudtune.files import read_json
from fraudtune.guides import fill_template
from fraudtune.report import fmt
from fraudtune.report.runfiles import RunResults

TEMPLATE = "LORA_EXPLAINED.md"  # in docs/templates/, named as the guide it renders
SEED_DIM, SEED_RANK, SEED_CLAIM_PCT = 4096, 8, 99.6  # the seed's example: a 4096 x 4096 matrix at r=8
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class ModelShape:
    """The dimensions of a Llama-style decoder that decide its parameter counts."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool = True

    def dims(self) -> dict[str, tuple[int, int]]:
        """(d_in, d_out) of each linear layer in one decoder block."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return {
            "q_proj": (self.hidden, q),
            "k_proj": (self.hidden, kv),
            "v_proj": (self.hidden, kv),
            "o_proj": (q, self.hidden),
            "gate_proj": (self.hidden, self.intermediate),
            "up_proj": (self.hidden, self.intermediate),
            "down_proj": (self.intermediate, self.hidden),
        }

    def total_params(self) -> int:
        """Embeddings (+ untied head) + blocks (linear layers and two RMSNorms each) + the final norm."""
        block = sum(full_params(*d) for d in self.dims().values()) + 2 * self.hidden
        head = 0 if self.tied else self.vocab * self.hidden
        return self.vocab * self.hidden + head + self.layers * block + self.hidden


# SmolLM2-135M-Instruct's config.json (hidden_size, num_hidden_layers, ...); checked against the cached copy in tests.
SMOLLM2_135M = ModelShape("SmolLM2-135M-Instruct", 576, 30, 9, 3, 64, 1536, 49152, True)


def full_params(d_in: int, d_out: int) -> int:
    return d_in * d_out


def lora_params(d_in: int, d_out: int, r: int) -> int:
    return r * (d_in + d_out)


def reduction_pct(full: int, lora: int) -> float:
    return 100 * (1 - lora / full)


def adapter_params(shape: ModelShape, r: int, targets: list[str] | str) -> int | None:
    """Trainable LoRA weights over all layers, or None for a target this arithmetic does not know."""
    names = ALL_LINEAR if targets == "all-linear" else list(targets)
    dims = shape.dims()
    if any(n not in dims for n in names):
        return None
    return shape.layers * sum(lora_params(*dims[n], r) for n in names)


def shape_from_config(config: dict[str, Any], name: str) -> ModelShape:
    """A ModelShape from a Hugging Face config.json."""
    heads = config["num_attention_heads"]
    return ModelShape(
        name=name,
        hidden=config["hidden_size"],
        layers=config["num_hidden_layers"],
        heads=heads,
        kv_heads=config.get("num_key_value_heads", heads),
        head_dim=config.get("head_dim") or config["hidden_size"] // heads,
        intermediate=config["intermediate_size"],
        vocab=config["vocab_size"],
        tied=bool(config.get("tie_word_embeddings", False)),
    )


def run_shape(run: RunResults) -> ModelShape | None:
    """The run's base model shape, from the config.json its adapter names (None if that folder is gone)."""
    adapter_cfg = run.run_dir / paths.ADAPTER_DIR / "adapter_config.json"
    if not adapter_cfg.exists():
        return None
    base = Path(read_json(adapter_cfg).get("base_model_name_or_path") or "")  # a damaged file: a one-line error
    if not (base / "config.json").is_file():
        return None
    return shape_from_config(read_json(base / "config.json"), base.name)


def all_params_from_line(line: str | None) -> int | None:
    """`all params: 134,975,808` from PEFT's trainable line (it counts base weights plus adapters)."""
    if not line or "all params:" not in line:
        return None
    value = line.split("all params:", 1)[1].split("||", 1)[0].strip().replace(",", "")
    return int(value) if value.isdigit() else None


def render_lora_doc(run: RunResults, ranks: list[int]) -> str:
    """docs/templates/LORA_EXPLAINED.md filled with the seed's, SmolLM2's and the run's parameter counts."""
    rank = ((run.config or {}).get("lora") or {}).get("r") or SEED_RANK
    return fill_template(
        TEMPLATE,
        **fmt.provenance(run.run_dir, run.meta),
        **_seed(),
        **_smollm2(ranks, rank),
        our_run="\n".join(_run(run)),
    )


def _seed() -> dict[str, str]:
    full = full_params(SEED_DIM, SEED_DIM)
    lora = lora_params(SEED_DIM, SEED_DIM, SEED_RANK)
    pct = reduction_pct(full, lora)
    table = fmt.md_table(
        ["", "formula", "parameters"],
        [
            ["full fine-tuning", f"{SEED_DIM} x {SEED_DIM}", f"{full:,}"],
            ["LoRA", f"{SEED_RANK} x ({SEED_DIM} + {SEED_DIM})", f"{lora:,}"],
            ["fewer with LoRA", "1 - LoRA / full", f"{pct:.2f}%"],
        ],
        right_from=2,
    )
    return {
        "seed_dim": str(SEED_DIM),
        "seed_rank": str(SEED_RANK),
        "seed_table": "\n".join(table),
        "seed_claim_pct": str(SEED_CLAIM_PCT),
        "seed_verdict": "confirmed" if round(pct, 1) >= SEED_CLAIM_PCT else "not confirmed",
        "seed_pct": f"{pct:.4f}",
    }


def _smollm2(ranks: list[int], r: int) -> dict[str, str]:
    s = SMOLLM2_135M
    matrix_table = fmt.md_table(
        ["matrix", "d_in -> d_out", "full", f"LoRA r={r}", "fewer"], _matrix_rows(s, r), right_from=2
    )
    rank_table = fmt.md_table(
        ["r", "q_proj / layer", "v_proj / layer", "q+v total", "q+v share", "all-linear total", "all-linear share"],
        _rank_rows(s, ranks),
    )
    return {
        "model": s.name,
        "hidden": str(s.hidden),
        "layers": str(s.layers),
        "heads": str(s.heads),
        "kv_heads": str(s.kv_heads),
        "head_dim": str(s.head_dim),
        "intermediate": str(s.intermediate),
        "vocab": f"{s.vocab:,}",
        "total_params": f"{s.total_params():,}",
        "rank": str(r),
        "matrix_table": "\n".join(matrix_table),
        "rank_table": "\n".join(rank_table),
    }


def _matrix_rows(s: ModelShape, r: int) -> list[list[str]]:
    rows = []
    for name, (d_in, d_out) in s.dims().items():
        full, lora = full_params(d_in, d_out), lora_params(d_in, d_out, r)
        rows.append([name, f"{d_in} -> {d_out}", f"{full:,}", f"{lora:,}", f"{reduction_pct(full, lora):.1f}%"])
    return rows


def _rank_rows(s: ModelShape, ranks: list[int]) -> list[list[Any]]:
    dims, total, rows = s.dims(), s.total_params(), []
    for r in ranks:
        q, v = lora_params(*dims["q_proj"], r), lora_params(*dims["v_proj"], r)
        qv, everything = adapter_params(s, r, ["q_proj", "v_proj"]), adapter_params(s, r, "all-linear")
        rows.append(
            [
                r,
                f"{q:,}",
                f"{v:,}",
                f"{qv:,}",
                f"{100 * qv / total:.3f}%",
                f"{everything:,}",
                f"{100 * everything / total:.2f}%",
            ]
        )
    return rows


def _run(run: RunResults) -> list[str]:
    summary, lora = run.train_summary, ((run.config or {}).get("lora") or {})
    if summary is None:
        return [f"not measured yet: run `{run.command('train')}`"]
    measured = summary.get("trainable_params")
    shape = run_shape(run) or (SMOLLM2_135M if "smollm2" in str((run.config or {}).get("model", {})) else None)
    expected = adapter_params(shape, lora["r"], lora["target_modules"]) if shape and lora.get("r") else None
    if shape and summary.get("method") == "full":
        expected = shape.total_params()
    base_total = (all_params_from_line(summary.get("trainable")) or 0) - (measured or 0)
    rows = [
        ["run", f"`{run.run_dir}`"],
        ["method", summary.get("method", fmt.DASH)],
        ["r / alpha / targets", f"{lora.get('r')} / {lora.get('alpha')} / {fmt.leaf(lora.get('target_modules'))}"],
        ["base model", f"{shape.name} ({shape.total_params():,} parameters)" if shape else fmt.DASH],
        ["trainable parameters, measured (train_summary.json)", fmt.num(measured)],
        ["trainable parameters, computed from the shapes", fmt.num(expected)],
        ["measured = computed", fmt.DASH if expected is None else ("yes" if expected == measured else "**no**")],
    ]
    if base_total > 0 and fmt.is_number(measured):
        rows.append(["fewer than full fine-tuning", f"{reduction_pct(base_total, measured):.2f}%"])
    return [*fmt.md_table(["", "value"], rows), "", f"PEFT's own line: `{summary.get('trainable')}`"]
