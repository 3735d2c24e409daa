"""`fraudtune data generate`: SPEC 4 counts, oracle agreement, diversity, near misses, splits, determinism."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import pytest
from spec_oracle import (
    CATEGORIES,
    DEMO_PROFILE,
    DOCUMENTED,
    HISTORICAL,
    WEIGHTS,
    demo_dataset,
    read_jsonl,
    spec_assess,
    spec_flags,
    spec_generic_score,
)

from fraudtune.cli import main
from fraudtune.data.chat import parse_answer
from fraudtune.data.generate import generate
from fraudtune.data.schema import validate_transaction
from fraudtune.errors import FraudtuneError
from fraudtune.profile import load_profile

PROFILE = load_profile(DEMO_PROFILE)
SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def data() -> Path:
    return demo_dataset()


@pytest.fixture(scope="module")
def metas(data: Path) -> list[dict]:
    return read_jsonl(data / "fraud_dataset.meta.jsonl")


@pytest.fixture(scope="module")
def chats(data: Path) -> list[dict]:
    return read_jsonl(data / "fraud_dataset.jsonl")


@pytest.fixture(scope="module")
def txns(metas: list[dict]) -> list[dict]:
    return [m["transaction"] for m in metas]


def test_files(data: Path) -> None:
    names = {"fraud_dataset.jsonl", "fraud_dataset.meta.jsonl", "data_card.json"}
    names |= {f"{s}{ext}" for s in SPLITS for ext in (".jsonl", ".meta.jsonl")}
    assert {p.name for p in data.iterdir()} == names


def test_category_counts_match_spec4(metas: list[dict]) -> None:
    counts = Counter((m["category"], m["label"]) for m in metas)
    assert counts == {
        ("clear_fraud", "FRAUD"): 100,
        ("clear_legitimate", "LEGITIMATE"): 200,
        ("borderline", "FRAUD"): 75,
        ("borderline", "LEGITIMATE"): 75,
        ("company_specific", "FRAUD"): 50,
    }


def test_split_is_80_10_10_stratified(metas: list[dict]) -> None:
    assert Counter(m["split"] for m in metas) == {"train": 400, "val": 50, "test": 50}
    strata = defaultdict(Counter)
    for m in metas:
        strata[m["category"], m["label"]][m["split"]] += 1
    for counts in strata.values():
        size = sum(counts.values())
        for split, share in zip(SPLITS, (0.8, 0.1, 0.1), strict=True):
            assert abs(counts[split] - share * size) <= 1, (counts, size)


def test_split_files_hold_their_examples_in_dataset_order(data: Path, metas: list[dict], chats: list[dict]) -> None:
    for split in SPLITS:
        chosen = [i for i, m in enumerate(metas) if m["split"] == split]
        assert read_jsonl(data / f"{split}.jsonl") == [chats[i] for i in chosen]
        assert read_jsonl(data / f"{split}.meta.jsonl") == [metas[i] for i in chosen]


def test_every_record_agrees_with_the_independent_spec(metas: list[dict], chats: list[dict]) -> None:
    for meta, chat in zip(metas, chats, strict=True):
        assert spec_assess(meta["transaction"]) == (meta["label"], meta["risk_score"], meta["red_flags"])
        answer = parse_answer(chat["messages"][-1]["content"], PROFILE)
        assert answer.error is None
        assert (answer.label, answer.risk_score, answer.red_flags) == (
            meta["label"],
            meta["risk_score"],
            meta["red_flags"] if meta["label"] == "FRAUD" else [],  # SPEC 2: LEGITIMATE answers list no flags
        )


def test_category_definitions_hold(metas: list[dict]) -> None:
    for m in metas:
        txn, flags = m["transaction"], spec_flags(m["transaction"])
        generic = [f for f in flags if f in WEIGHTS]
        rules = [f for f in flags if f not in WEIGHTS]
        score = spec_assess(txn)[1]
        if m["category"] == "clear_fraud":
            assert len(generic) >= 3 and score >= 85 and not rules
        elif m["category"] == "clear_legitimate":  # SPEC 4 (amended): score <= 35, at most two minor signals
            assert len(generic) <= 2 and score <= 35 and not rules
        elif m["category"] == "borderline":
            assert 40 <= score <= 60 and not rules
            assert m["label"] == ("FRAUD" if score >= 50 else "LEGITIMATE")
        else:
            assert m["category"] == "company_specific"
            assert len(rules) == 1 and spec_generic_score(txn) < 50 and m["label"] == "FRAUD"
            assert m["deciding_rule"] == rules[0]
            assert m["rule_kind"] == ("historical" if rules[0] in HISTORICAL else "documented")


def test_every_rule_decides_at_least_three_times(metas: list[dict]) -> None:
    deciding = Counter(m["deciding_rule"] for m in metas if m["category"] == "company_specific")
    assert set(deciding) == set(DOCUMENTED) | set(HISTORICAL)
    assert min(deciding.values()) >= 3
    historical = sum(deciding[c] for c in HISTORICAL) / sum(deciding.values())
    assert 0.25 <= historical <= 0.42  # "about a third"


def test_borderline_labels_are_balanced(metas: list[dict]) -> None:
    labels = Counter(m["label"] for m in metas if m["category"] == "borderline")
    assert 0.4 <= labels["FRAUD"] / sum(labels.values()) <= 0.6


@pytest.mark.parametrize(
    ("code", "near"),
    [
        ("MANUAL_KEY_ENTRY", lambda t: t["txn_code"] == "TC-07" and 400 <= t["amount"] < 500),
        ("FRAUD_RING_MERCHANT", lambda t: t["merchant"]["id"].startswith("M-QX") and 40 <= t["amount"] < 50),
        ("FORCE_POST_OVERRIDE", lambda t: t["txn_code"] == "TC-33" and 160 <= t["amount"] < 200),
        (
            "GIFT_CARD_AFTER_RESET",
            lambda t: (
                t["merchant"]["category"] == "gift_cards"
                and 240 <= t["amount"] < 300
                and (t["customer"]["password_reset_hours_ago"] or 99) <= 48
            ),
        ),
        ("VELOCITY_BURST", lambda t: t["velocity"]["txn_last_1h"] == 5),
        (
            "CARD_TESTING",
            lambda t: t["channel"] == "online" and (2 <= t["amount"] < 2.5 or t["velocity"]["txn_last_24h"] == 3),
        ),
        ("NEW_ACCOUNT_FUNDING", lambda t: t["txn_code"] == "TC-44" and 30 <= t["customer"]["account_age_days"] <= 33),
        ("MARKETPLACE_TAKEOVER", lambda t: t["txn_code"] == "TC-21" and 320 <= t["amount"] < 400),
    ],
)
def test_near_miss_negatives_exist_and_are_recorded(metas: list[dict], code: str, near) -> None:
    recorded = [m for m in metas if m["near_miss"] == code]
    assert recorded and any(near(m["transaction"]) for m in recorded)
    for m in recorded:
        assert m["label"] == "LEGITIMATE" and m["category"] in ("clear_legitimate", "borderline")
        assert code not in spec_flags(m["transaction"])


def test_transactions_meet_the_schema(txns: list[dict]) -> None:
    assert all(validate_transaction(t) == [] for t in txns)


def test_diversity(txns: list[dict]) -> None:
    merchants = {t["merchant"]["id"] for t in txns}
    assert len(merchants) >= 40
    assert all(re.fullmatch(r"M-[A-Z]+-\d{4}", m) for m in merchants)
    assert any(m.startswith("M-QX") for m in merchants)
    assert merchants & {"M-QUICKGIFT-0007", "M-LUXWATCH-0420", "M-FASTFUEL-0088", "M-DEALZONE-0271"}
    assert {t["merchant"]["category"] for t in txns} == set(CATEGORIES)
    assert {t["channel"] for t in txns} == {"in_person", "online", "recurring", "atm"}
    times = [datetime.fromisoformat(t["timestamp"]) for t in txns]
    assert {d.hour for d in times} == set(range(24))
    assert {d.weekday() for d in times} == set(range(7))
    assert len({t["merchant"]["country"] for t in txns}) >= 12
    decades = Counter(min(3, int(len(str(int(t["amount"]))) - 1)) for t in txns)  # $1-9, 10-99, 100-999, 1000+
    assert all(decades[d] >= 25 for d in range(4)), decades
    assert min(t["amount"] for t in txns) < 5 and max(t["amount"] for t in txns) > 5000
    customers = [t["customer"] for t in txns]
    assert len({c["id"] for c in customers}) == len(txns)
    assert sum(c["account_age_days"] < 30 for c in customers) >= 20
    assert sum(c["account_age_days"] > 1000 for c in customers) >= 50
    assert sum(c["travel_notice_country"] is not None for c in customers) >= 20
    assert sum(c["password_reset_hours_ago"] is not None for c in customers) >= 20


def test_channel_matches_code(txns: list[dict]) -> None:
    channel_of = {
        "TC-01": "in_person",
        "TC-05": "in_person",
        "TC-12": "recurring",
        "TC-20": "online",
        "TC-21": "online",
    }
    for t in txns:
        if t["merchant"]["category"] == "atm_cash" or t["channel"] == "atm":
            assert (t["merchant"]["category"], t["channel"]) == ("atm_cash", "atm")
        elif t["txn_code"] in channel_of:
            assert t["channel"] == channel_of[t["txn_code"]]
        assert t["velocity"]["txn_last_24h"] >= t["velocity"]["txn_last_1h"]


def test_no_near_duplicates_across_splits(metas: list[dict], chats: list[dict]) -> None:
    """Near-duplicate: same merchant and customer, same hour of day, amounts within 1%."""
    groups = defaultdict(list)
    for m in metas:
        t = m["transaction"]
        groups[t["merchant"]["id"], t["customer"]["id"], int(t["timestamp"][11:13])].append((t["amount"], m["split"]))
    for members in groups.values():
        for i, (a, split_a) in enumerate(members):
            for b, split_b in members[i + 1 :]:
                assert split_a == split_b or abs(a - b) > 0.01 * max(a, b)
    users = Counter(c["messages"][1]["content"].lower() for c in chats)
    assert max(users.values()) == 1


def test_chat_format(chats: list[dict]) -> None:
    for chat in chats:
        assert list(chat) == ["messages"]
        assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant"]
        assert all(set(m) == {"role", "content"} and m["content"].strip() for m in chat["messages"])


def test_data_card(data: Path, metas: list[dict]) -> None:
    card = json.loads((data / "data_card.json").read_text())
    assert (card["n"], card["seed"], card["profile"]) == (500, 7, str(DEMO_PROFILE))
    for split in SPLITS:
        expected = Counter((m["category"], m["label"]) for m in metas if m["split"] == split)
        got = {(cat, label): n for cat, labels in card["counts"][split].items() for label, n in labels.items()}
        assert got == expected


def test_same_seed_gives_byte_identical_files(data: Path, tmp_path: Path) -> None:
    generate(tmp_path / "again", DEMO_PROFILE, n=500, seed=7)
    for path in data.iterdir():
        assert (tmp_path / "again" / path.name).read_bytes() == path.read_bytes(), path.name


@pytest.mark.parametrize(
    ("n", "expected", "splits"),
    [
        (8, {"clear_fraud": 2, "clear_legitimate": 3, "borderline": 2, "company_specific": 1}, None),
        (40, {"clear_fraud": 8, "clear_legitimate": 16, "borderline": 12, "company_specific": 4}, (32, 4, 4)),
        (80, {"clear_fraud": 16, "clear_legitimate": 32, "borderline": 24, "company_specific": 8}, (64, 8, 8)),
    ],
)
def test_small_n_keeps_the_ratios(tmp_path: Path, n: int, expected: dict, splits) -> None:
    """Expected counts: n x (0.2, 0.4, 0.3, 0.1) with largest-remainder rounding, worked out by hand."""
    generate(tmp_path, DEMO_PROFILE, n=n, seed=11)
    metas = read_jsonl(tmp_path / "fraud_dataset.meta.jsonl")
    assert Counter(m["category"] for m in metas) == expected
    if splits:
        assert tuple(Counter(m["split"] for m in metas)[s] for s in SPLITS) == splits
    assert all(spec_assess(m["transaction"])[0] == m["label"] for m in metas)


def test_cli_generate(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "generate", "--out", str(tmp_path), "--n", "40", "--seed", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["splits"] == {"train": 32, "val": 4, "test": 4}
    assert summary["n"] == 40 and summary["seed"] == 3


def test_cli_generate_rule_min(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "generate", "--out", str(tmp_path), "--n", "40", "--rule-min", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    card = json.loads((tmp_path / "data_card.json").read_text())
    assert summary["rule_min"] == card["rule_min"] == 2 and summary["n"] > 40
    assert min(cell["positives"] for cell in card["train_coverage"].values()) >= 2


def test_too_few_examples(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(FraudtuneError, match="need at least 8"):
        generate(tmp_path, DEMO_PROFILE, n=7, seed=1)
    assert main(["data", "generate", "--out", str(tmp_path), "--n", "7"]) == 1
    assert "need at least 8 examples" in capsys.readouterr().err


def test_about_half_of_clear_legitimate_rows_carry_minor_signals(metas: list[dict]) -> None:
    """SPEC 4 (amended): normal life has minor signals, about half of the clear legitimate rows carry one or two."""
    legit = [m for m in metas if m["category"] == "clear_legitimate"]
    with_flags = sum(bool(spec_flags(m["transaction"])) for m in legit)
    assert 0.35 <= with_flags / len(legit) <= 0.65


def test_rule_cases_span_the_generic_scores_of_legitimate_rows(tmp_path: Path) -> None:
    """No shortcut: company-specific rows' generic scores cover the legitimate range (0 to the borderline scores
    under 50), not a band of their own; checked on 2,000 rows with the independent SPEC oracle."""
    generate(tmp_path, DEMO_PROFILE, n=2000, seed=5)
    metas = read_jsonl(tmp_path / "fraud_dataset.meta.jsonl")
    company = [spec_generic_score(m["transaction"]) for m in metas if m["category"] == "company_specific"]
    legit = [spec_generic_score(m["transaction"]) for m in metas if m["label"] == "LEGITIMATE"]
    assert max(company) < 50 and min(company) == 0 and max(company) >= 40
    for low, high in ((0, 0), (5, 35), (40, 45)):  # the three shapes, each held by both sides
        share_company = sum(low <= s <= high for s in company) / len(company)
        share_legit = sum(low <= s <= high for s in legit) / len(legit)
        assert share_company >= 0.1 and share_legit >= 0.1, (low, high, share_company, share_legit)


def test_rule_min_covers_every_rule_and_blacklisted_id_in_the_training_split(tmp_path: Path) -> None:
    from fraudtune.config import DataConfig

    k = 6
    summary = generate(tmp_path, DEMO_PROFILE, n=200, seed=4, data_cfg=DataConfig(rule_min=k))
    metas = read_jsonl(tmp_path / "fraud_dataset.meta.jsonl")
    train = [m for m in metas if m["split"] == "train"]
    blacklist = next(r for r in PROFILE.rules if r.code == "BLACKLISTED_MERCHANT").when[0].value
    for merchant_id in blacklist:
        hits = [m for m in train if m["transaction"]["merchant"]["id"] == merchant_id]
        assert len(hits) >= k and all(m["label"] == "FRAUD" for m in hits)
        stem = merchant_id.rsplit("-", 1)[0]
        lookalikes = [
            m for m in train if m["transaction"]["merchant"]["id"].startswith(stem + "-") and m["label"] == "LEGITIMATE"
        ]
        assert len(lookalikes) >= k  # near misses of a list: the same stem, another number, LEGITIMATE
    for code in set(DOCUMENTED) | set(HISTORICAL):
        positives = [
            m for m in train if code in spec_flags(m["transaction"]) and spec_generic_score(m["transaction"]) < 50
        ]
        assert len(positives) >= k, code  # rule-only positives: only the rule makes them fraud
        if code != "BLACKLISTED_MERCHANT":
            near = [m for m in train if m["near_miss"] == code and m["label"] == "LEGITIMATE"]
            assert len(near) >= k, code
    card = json.loads((tmp_path / "data_card.json").read_text())
    assert card["rule_min"] == k and card["n_requested"] == 200 and card["n"] == summary["n"] == len(metas) > 200
    assert min(v["positives"] for v in card["train_coverage"].values()) >= k
    assert all(spec_assess(m["transaction"])[0] == m["label"] for m in metas)


def test_rule_min_adds_rule_cases_and_near_misses_on_top_of_the_plain_rows() -> None:
    """A per-rule minimum adds rows; the plain (not near-miss) negatives keep their SPEC 4 count, as without it."""
    import random

    from fraudtune.data.plan import plan

    def plain(intents: list) -> dict[str, int]:
        return {
            c: sum(i.category == c and i.label == "LEGITIMATE" and not i.near_miss for i in intents)
            for c in ("clear_legitimate", "borderline")
        }

    base, topped = plan(400, PROFILE, random.Random(1)), plan(400, PROFILE, random.Random(1), rule_min=30)
    assert plain(topped) == plain(base) and plain(base)["clear_legitimate"] == 160 - round(160 * 0.12)
    assert len(topped) > len(base) + 2 * 16 * 30  # every unit's rule cases and near misses come on top
    assert sum(i.category == "clear_fraud" for i in topped) == sum(i.category == "clear_fraud" for i in base) == 80
    for intents in (base, topped):  # the near-miss top-ups are matched by borderline frauds: balanced labels
        border = [i.label for i in intents if i.category == "borderline"]
        assert border.count("FRAUD") == border.count("LEGITIMATE")
    for n in (16, 17, 33):  # without top-ups the size is n exactly, odd borderline counts included
        assert len(plan(n, PROFILE, random.Random(1))) == n
    assert sum(i.category == "borderline" for i in topped) > sum(i.category == "borderline" for i in base) == 120


def test_item_min_sets_each_blacklisted_id_apart_from_the_rules() -> None:
    """data.item_min: each listed value (blacklisted id) at its own minimum, the rules still at rule_min, and the
    blacklist as a whole never under rule_min; item_min=None plans exactly what rule_min alone does."""
    import random
    from collections import Counter

    from fraudtune.data.plan import plan

    def counts(intents: list) -> tuple[Counter, Counter]:
        fired = Counter((i.rule, i.pick) for i in intents if i.rule)
        near = Counter((i.near_miss, i.pick) for i in intents if i.near_miss)
        return fired, near

    same = plan(400, PROFILE, random.Random(1), rule_min=30, item_min=None)
    assert same == plan(400, PROFILE, random.Random(1), rule_min=30)
    fewer = plan(400, PROFILE, random.Random(1), rule_min=30, item_min=5)
    fired, near = counts(fewer)
    blacklist = next(r for r in PROFILE.rules if r.code == "BLACKLISTED_MERCHANT").when[0].value
    need_rule, need_item = 30 / 0.8, 5 / 0.8
    for code in set(DOCUMENTED) | set(HISTORICAL):
        if code == "BLACKLISTED_MERCHANT":
            per_id = [fired[(code, merchant_id)] for merchant_id in blacklist]
            assert min(per_id) >= need_item and sum(per_id) >= need_rule
            assert max(per_id) < need_rule  # not 30 per id any more
            assert min(near[(code, merchant_id)] for merchant_id in blacklist) >= need_item
        else:
            assert fired[(code, None)] >= need_rule and near[(code, None)] >= need_rule, code
    assert len(fewer) < len(same) - 8 * 20  # most of the blacklist rows gone


def test_evidence_first_answers_state_flags_and_score_before_the_verdict(tmp_path: Path) -> None:
    from fraudtune.config import DataConfig

    generate(tmp_path, DEMO_PROFILE, n=80, seed=2, data_cfg=DataConfig(answer_order="evidence_first"))
    metas = read_jsonl(tmp_path / "fraud_dataset.meta.jsonl")
    for chat, meta in zip(read_jsonl(tmp_path / "fraud_dataset.jsonl"), metas, strict=True):
        text = chat["messages"][-1]["content"]
        lines = text.split("\n")
        assert lines[0].startswith("Red Flags: [") and lines[1].startswith("Risk Score: ")
        assert lines[2] == meta["label"] and lines[3].startswith("Reasoning: ")
        parsed = parse_answer(text, PROFILE)
        assert parsed.error is None and parsed.label == meta["label"] and parsed.risk_score == meta["risk_score"]
        # the evidence is every signal that fired, whatever the verdict; the record keeps SPEC 2's "LEGITIMATE: []"
        assert sorted(parsed.signals) == sorted(meta["red_flags"])
        assert parsed.red_flags == (parsed.signals if meta["label"] == "FRAUD" else [])
        if meta["deciding_rule"]:  # the deciding company rule is the first flag written
            assert parsed.red_flags[0] == meta["deciding_rule"]
    minor = [m for m in metas if m["label"] == "LEGITIMATE" and m["red_flags"]]
    assert minor  # legitimate rows with minor signals, whose evidence is not empty


def test_twins_are_minimal_pairs_across_the_rule_in_their_anchors_split(tmp_path: Path) -> None:
    from fraudtune.config import DataConfig
    from fraudtune.data.twins import moved_fields

    generate(tmp_path, DEMO_PROFILE, n=300, seed=5, data_cfg=DataConfig(twins=True))
    metas = read_jsonl(tmp_path / "fraud_dataset.meta.jsonl")
    by_id = {m["transaction_id"]: m for m in metas}
    twins = [m for m in metas if "twin_of" in m]
    anchors = [m for m in metas if "twin_of" not in m and m["category"] in ("company_specific", "borderline")]
    anchors += [m for m in metas if "twin_of" not in m and m["category"] == "clear_legitimate" and m["near_miss"]]
    assert len(twins) >= 0.8 * len(anchors) > 0  # nearly every rule case, near miss and borderline row
    changed_fields = Counter()
    for twin in twins:
        anchor = by_id[twin["twin_of"]]
        assert twin["split"] == anchor["split"] and twin["label"] != anchor["label"]
        assert spec_assess(twin["transaction"])[0] == twin["label"]  # labelled by the SPEC, not by intention
        assert twin["unit"] == anchor["unit"]  # the same rule (and blacklisted id) on the other side
        if twin["unit"]:
            code = twin["unit"].split(":")[0]
            assert (code in spec_flags(twin["transaction"])) == (twin["label"] == "FRAUD")
        else:  # a borderline pair: one generic signal moves the score across the threshold
            assert twin["category"] == anchor["category"] == "borderline"
            assert (spec_generic_score(twin["transaction"]) >= 50) == (twin["label"] == "FRAUD")
        a, t = anchor["transaction"], twin["transaction"]
        assert t["customer"]["id"] != a["customer"]["id"] and t["transaction_id"] != a["transaction_id"]
        flat_a, flat_t = _flat(a), _flat(t)
        moved = {k for k in flat_a if flat_a[k] != flat_t[k]} - {"transaction_id", "customer.id"}
        assert moved == moved_fields(a, t)
        assert 1 <= len(moved) <= 3, (moved, twin["unit"])  # the rule's value (and what it drags along) only
        changed_fields.update(moved)
    assert changed_fields["amount"] and changed_fields["merchant.id"]  # thresholds and lookalike ids both move
    card = json.loads((tmp_path / "data_card.json").read_text())
    assert card["twins"] == len(twins) and card["n"] == len(metas)
    assert all(validate_transaction(m["transaction"]) == [] for m in twins)


def _flat(obj: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_score_tally_states_each_weight_and_the_running_total(tmp_path: Path) -> None:
    """data.score_tally: each generic flag's phrase ends in '; +weight = total so far' (SPEC 3.1 weights, capped at
    100), the rules' phrases come first without one, and the score line is the last total raised to the rule's
    floor; the answer still parses to the same record."""
    from fraudtune.config import DataConfig

    with pytest.raises(ValueError, match="score_tally needs data.answer_order=evidence_first"):
        DataConfig(score_tally=True)
    cfg = DataConfig(answer_order="evidence_first", score_tally=True, rule_min=2)
    generate(tmp_path, DEMO_PROFILE, n=80, seed=5, data_cfg=cfg)
    weights = {r.code: r.weight for r in PROFILE.rules if r.kind == "generic"}
    metas = read_jsonl(tmp_path / "fraud_dataset.meta.jsonl")
    seen_rule = seen_long = 0
    for chat, meta in zip(read_jsonl(tmp_path / "fraud_dataset.jsonl"), metas, strict=True):
        text = chat["messages"][-1]["content"]
        parsed = parse_answer(text, PROFILE)
        assert parsed.error is None and parsed.label == meta["label"] and parsed.risk_score == meta["risk_score"]
        assert sorted(parsed.signals) == sorted(meta["red_flags"])
        generic = [c for c in parsed.signals if c in weights]
        assert parsed.signals[len(parsed.signals) - len(generic) :] == generic  # the rules first
        steps = [(int(a), int(b)) for a, b in re.findall(r"; \+(\d+) = (\d+)\)", text.split("\n")[0])]
        expected, total = [], 0
        for code in generic:
            total = min(100, total + weights[code])
            expected.append((weights[code], total))
        assert steps == expected, text
        ruled = len(generic) < len(parsed.signals)
        assert meta["risk_score"] == spec_assess(meta["transaction"])[1]
        assert parsed.risk_score == total or (ruled and parsed.risk_score > total)  # a rule's floor lifts it
        seen_rule += ruled
        seen_long += len(generic) >= 3
    assert seen_rule and seen_long
    assert json.loads((tmp_path / "data_card.json").read_text())["score_tally"] is True
