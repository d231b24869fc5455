"""The conversation-level model (pipeline/score/risk/dialogue.py, models/risk_dialogue): blocks,
features of the dialogue's shape, the shipped model on real text, its loader's refusals, the
STC-3 loader's split guard, and what it adds to the Risk (satisfaction, evidence)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.contracts import ContractError
from pipeline.schema import Transcript, Utterance
from pipeline.score.risk import assess_risk
from pipeline.score.risk.calibrate import recalibrate_language
from pipeline.score.risk.config import CALIBRATION_DIR, load_calibration, load_risk_config
from pipeline.score.risk.corpora import STC3_JSONL, load_helpdesk_dialogues
from pipeline.score.risk.dialogue import (
    DEFAULT_MODEL,
    SHAPE_FEATURES,
    TURN_FEATURES,
    DialogueModel,
    Repeats,
    blocks_of,
    feature_names,
    load_dialogue_model,
)
from pipeline.score.risk.engine import check_calibration, compute_features


def call(turns: list[tuple[str, str]], language: str = "zh") -> Transcript:
    return Transcript(
        call_id="t",
        language=language,
        utterances=[
            Utterance(speaker=s, start=float(k), end=k + 1.0, text=t)
            for k, (s, t) in enumerate(turns)
        ],
    )


@pytest.mark.parametrize(
    ("turns", "expected"),
    [
        ([("customer", "a"), ("customer", "b"), ("agent", "c")], [("customer", [0, 1], "a b"), ("agent", [2], "c")]),
        ([("agent", "hi"), ("customer", "  "), ("agent", "again")], [("agent", [0, 2], "hi again")]),
        ([("unknown", "x"), ("customer", "y")], [("agent", [0], "x"), ("customer", [1], "y")]),
        ([], []),
    ],
)  # fmt: skip
def test_blocks_join_consecutive_turns_of_one_speaker(turns, expected) -> None:
    assert blocks_of(turns) == expected


def _shape(model: DialogueModel, turns: list[tuple[str, str]]) -> dict[str, float]:
    x = model.features(blocks_of(turns))
    names = feature_names(model.card.dim)
    return {n: float(v) for n, v in zip(names, x, strict=True) if n in SHAPE_FEATURES}


def test_shape_features_see_repeated_asks_and_who_ends() -> None:
    model = load_dialogue_model()
    ask = "我的快递显示签收了但我根本没收到"
    repeated = _shape(
        model,
        [("customer", ask), ("agent", "已经登记"), ("customer", ask + "！"), ("agent", "请等待"), ("customer", "什么时候能解决？")],
    )  # fmt: skip
    assert repeated["repeated_asks"] == 1 and repeated["repeat_max_similarity"] > 0.9
    assert repeated["ends_with_customer"] == 1 and repeated["customer_after_last_answer"] == 1
    once = _shape(model, [("customer", ask), ("agent", "已经登记"), ("customer", "好的谢谢")])
    assert once["repeated_asks"] == 0 and once["customer_after_last_answer"] == 1
    answered = _shape(model, [("customer", ask), ("agent", "已经登记")])
    assert answered["ends_with_customer"] == 0 and answered["customer_after_last_answer"] == 0
    assert answered["agent_answered"] == 1


UNRESOLVED = [
    ("customer", "我的宽带断了三天了，到底什么时候能修好？"),
    ("agent", "已经为您报修，请耐心等待。"),
    ("customer", "前天也是这么说的，一直没人来修。"),
    ("agent", "请您再耐心等待一下。"),
    ("customer", "每次都让我等，太不负责任了，我要投诉你们。"),
]
RESOLVED = [
    ("customer", "我的宽带断了，能帮我看看吗？"),
    ("agent", "已经为您远程重置，现在可以上网了。"),
    ("customer", "好了，可以上网了，谢谢你们！"),
]


@pytest.mark.parametrize("language", ["zh", "en"])
def test_unresolved_dialogue_scores_riskier_and_less_satisfied(language: str) -> None:
    en = {
        UNRESOLVED[0][1]: "My broadband has been down for three days, when will it be fixed?",
        UNRESOLVED[1][1]: "We have reported the fault, please wait patiently.",
        UNRESOLVED[2][1]: "You said that two days ago too, nobody has come.",
        UNRESOLVED[3][1]: "Please wait a little longer.",
        UNRESOLVED[4][1]: "You always tell me to wait. This is irresponsible, I will complain.",
        RESOLVED[0][1]: "My broadband is down, can you take a look?",
        RESOLVED[1][1]: "We have reset it remotely, you can go online now.",
        RESOLVED[2][1]: "It works now, thank you!",
    }
    tr = (lambda t: t) if language == "zh" else en.get
    model = load_dialogue_model()
    bad = model.score([(s, tr(t)) for s, t in UNRESOLVED])
    good = model.score([(s, tr(t)) for s, t in RESOLVED])
    assert bad.z > good.z and bad.satisfaction < good.satisfaction, (bad, good)
    assert -2 <= bad.satisfaction <= 2 and -2 <= good.satisfaction <= 2


def test_risk_reports_satisfaction_and_cites_the_turns_that_moved_it() -> None:
    risk = assess_risk(call(UNRESOLVED))
    calm = assess_risk(call(RESOLVED))
    assert risk.satisfaction is not None and calm.satisfaction is not None
    assert risk.satisfaction < calm.satisfaction and risk.score > calm.score
    assert "risk_dialogue-v1" in risk.model
    moved = [e for e in risk.evidence if "dialogue risk" in e.reason]
    assert moved and all(e.utterance in (0, 2, 4) and e.text for e in moved)  # customer turns
    top = max(moved, key=lambda e: e.weight)
    assert top.weight > 0 and "raises" in top.reason
    # only what moved the score: per-turn sentiment has no weight in calibration v4
    assert all(e.weight for e in risk.evidence)
    assert not any("customer dissatisfaction" in e.reason for e in risk.evidence)


def test_shipped_calibration_names_the_dialogue_model_it_read() -> None:
    config = load_risk_config()
    cal = load_calibration(config.calibration)
    assert cal.dialogue == load_dialogue_model(config.dialogue_path()).name
    assert cal.weights and cal.weights["dialogue"] > 0
    other = cal.model_copy(update={"dialogue": "risk_dialogue-v0"})
    with pytest.raises(ContractError, match="fitted on the dialogue model risk_dialogue-v0"):
        check_calibration(other, config, "zh", "whatever")


def _copy_model(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, d)
    return d


def test_broken_dialogue_model_is_rejected(tmp_path: Path) -> None:
    d = _copy_model(tmp_path)
    (d / "model.npz").unlink()
    with pytest.raises(ContractError, match="file not found") as err:
        DialogueModel(d)
    assert str(d / "model.npz") in str(err.value)

    d = _copy_model(tmp_path / "b")
    data = dict(np.load(d / "model.npz"))
    data["risk_w"] = data["risk_w"][:-1]
    np.savez(d / "model.npz", **data)
    with pytest.raises(ContractError, match="risk_w has shape"):
        DialogueModel(d)

    d = _copy_model(tmp_path / "c")
    card = yaml.safe_load((d / "model.yaml").read_text("utf-8"))
    card["encoder_version"] = "0.0.1"
    (d / "model.yaml").write_text(yaml.safe_dump(card), "utf-8")
    with pytest.raises(ContractError, match="retrain it") as err:
        DialogueModel(d)
    assert "model.yaml" in str(err.value)

    d = _copy_model(tmp_path / "d")
    card["encoder_version"] = DialogueModel(DEFAULT_MODEL).card.encoder_version
    card["surprise"] = 1
    (d / "model.yaml").write_text(yaml.safe_dump(card), "utf-8")
    with pytest.raises(ContractError, match="surprise"):
        DialogueModel(d)


def test_feature_names_cover_the_vector() -> None:
    model = load_dialogue_model()
    x = model.features(blocks_of(RESOLVED))
    assert x.shape == (len(feature_names(model.card.dim)),) == model.mean.shape
    assert set(TURN_FEATURES) <= set(feature_names(model.card.dim))


def test_helpdesk_loader_refuses_any_split_but_train_and_dev(tmp_path: Path) -> None:
    row = {
        "id": "1",
        "split": "train",
        "turns": [{"sender": "customer", "text": "hi"}, {"sender": "helpdesk", "text": "yes"}],
        "satisfaction_mean": -1.0,
        "satisfaction_dist": [0.5, 0.5, 0, 0, 0],
    }
    good = tmp_path / "ok.jsonl"
    good.write_text(json.dumps(row) + "\n", "utf-8")
    (d,) = load_helpdesk_dialogues(good)
    assert d.turns == (("customer", "hi"), ("agent", "yes")) and d.satisfaction == -1.0
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(row) + "\n" + json.dumps({**row, "split": "test"}) + "\n", "utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: split 'test'"):
        load_helpdesk_dialogues(bad)


@pytest.mark.skipif(not STC3_JSONL.exists(), reason=f"{STC3_JSONL} absent (../shared/data)")
def test_stc3_train_and_dev_load() -> None:
    rows = load_helpdesk_dialogues()
    assert sum(d.split == "train" for d in rows) == 1337
    assert sum(d.split == "dev" for d in rows) == 335
    assert sum(d.satisfaction < -0.5 for d in rows) == 504


def test_chinese_calls_use_their_own_platt_and_english_the_fitted_one() -> None:
    config = load_risk_config()
    cal = load_calibration(config.calibration)
    assert cal.languages and "zh" in cal.languages and "en" not in cal.languages
    assert cal.platt("zh") == (cal.languages["zh"].a, cal.languages["zh"].b)
    assert cal.platt("en") == (cal.a, cal.b) == (1.0, 0.0)  # v4's weights are P on STC-3
    for language, turns in (("zh", UNRESOLVED), ("en", [(s, "It still does not work.") for s, _ in UNRESOLVED])):  # fmt: skip
        t = call(turns, language)
        z = compute_features(t, None, config, cal).z
        a, b = cal.platt(language)
        assert assess_risk(t).score == round(1 / (1 + np.exp(-(a * z + b))), 4)


def test_language_platt_refuses_calls_of_another_language(tmp_path: Path) -> None:
    shutil.copy(
        sorted(CALIBRATION_DIR.glob("calibration-v*.yaml"))[-1], tmp_path / "calibration-v1.yaml"
    )
    calls = [(call(RESOLVED, "en"), 0), (call([(s, "It still does not work.") for s, _ in UNRESOLVED], "en"), 1)]  # fmt: skip
    with pytest.raises(ValueError, match=r"calls in \['en'\], not 'zh'"):
        recalibrate_language(calls, "zh", "test", directory=tmp_path)
    path, report = recalibrate_language(
        [(call(RESOLVED), 0), (call(UNRESOLVED), 1)], "zh", "two calls", directory=tmp_path
    )
    assert path.name == "calibration-v2.yaml" and report["n"] == 2
    written = load_calibration("v2", tmp_path)
    assert written.languages["zh"].fitted_on == "two calls" and written.weights


@pytest.mark.parametrize("n, seed", [(2, 0), (3, 1), (7, 2), (40, 3), (1100, 4)])
def test_repeats_left_out_match_a_fresh_computation(n: int, seed: int) -> None:
    """Leaving a customer block out reuses the call's products: the same repeat figures as
    computing them again without that block (also across the product's row chunks)."""
    rng = np.random.default_rng(seed)
    ce = rng.normal(size=(n, 16)).astype(np.float32)
    ce /= np.linalg.norm(ce, axis=1, keepdims=True)
    ce[n // 2] = ce[0]  # an exact repeat: its best is 1.0, from block 0
    repeats = Repeats.of(ce)
    full = ce @ ce.T
    assert repeats.best() == pytest.approx([float(full[k, :k].max()) for k in range(1, n)])
    for without in sorted({0, 1, n // 2, n - 1}):
        rest = np.delete(ce, without, axis=0)
        fresh = Repeats.of(rest).best()
        assert sorted(repeats.best(without)) == pytest.approx(sorted(fresh))
