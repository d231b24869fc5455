"""A nightly batch nothing can break: a hostile archive through the processor and ``callqa run``.

The archive holds links out of it, a manifest pointing outside, a dangling link, a folder
named like audio, a name clash, a non-UTF-8 name, a transcript with no speech, a 6-channel
recording, a manifest rubric outside the allowed roots, an unknown rubric and a
20,000-utterance transcript. Every good call is scored, nothing outside is read, nothing is
skipped silently, and reruns neither redo nor duplicate failed work.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.long_transcript import long_transcript
from pipeline.archive import discover
from pipeline.config import load_settings
from pipeline.process import CallProcessor, StoreDown
from tests.builders import noise_wav

ROOT = Path(__file__).resolve().parents[1]
ZH = ROOT / "samples" / "zh_transcripts"
CALLQA = [sys.executable, "-m", "pipeline.cli"]
GOOD = ["bank_001_compliant", "bank_003_forbidden", "ecom_002_missing_closing"]


def _wav(path: Path, channels: int, seconds: float = 1.0, rate: int = 16_000) -> Path:
    return noise_wav(path, channels, int(seconds * rate), rate)


def hostile_archive(base: Path) -> tuple[Path, Path]:
    """(archive, outside folder) with every kind of trouble the issue lists."""
    outside = base / "outside"
    outside.mkdir()
    secret = json.loads((ZH / "bank_001_compliant.json").read_text("utf-8"))
    secret["utterances"][0]["text"] = "SECRET-OUTSIDE " + secret["utterances"][0]["text"]
    (outside / "secret.json").write_text(json.dumps(secret, ensure_ascii=False), "utf-8")
    (outside / "evil.yaml").write_text("id: evil\n", "utf-8")

    archive = base / "archive"
    archive.mkdir()
    for name in GOOD:
        shutil.copy(ZH / f"{name}.json", archive / f"{name}.json")
    # a name clash: the same stem twice (one is audio that fails to decode as speech)
    shutil.copy(ZH / "ecom_001_compliant_asr.json", archive / "clash.json")
    (archive / "clash.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    (archive / "link_out.json").symlink_to("../outside/secret.json")
    (archive / "link_etc.wav").symlink_to("/etc/passwd")
    (archive / "dangling.wav").symlink_to("nowhere.wav")
    (archive / "x.wav").mkdir()
    (archive / os.fsdecode(b"bad\xffname.json")).write_text("{}", "utf-8")
    (archive / "new\nline.json").write_text("{}", "utf-8")
    silent = {"call_id": "noise", "language": "zh", "duration": 30.0, "utterances": []}
    (archive / "noise.json").write_text(json.dumps(silent), "utf-8")
    _wav(archive / "six.wav", channels=6)
    big = long_transcript(20_000)
    (archive / "long.json").write_text(big.model_dump_json(), "utf-8")
    (archive / "garbage_with_unknown_rubric.wav").write_bytes(b"not audio at all")

    rows = [{"file": f"{n}.json", "call_id": n} for n in GOOD]
    rows += [
        {"file": "clash.json"},
        {"file": "clash.wav"},
        {"file": "link_out.json", "call_id": "link_out"},
        {"file": "../outside/secret.json", "call_id": "rel_secret"},
        {"file": str(outside / "secret.json"), "call_id": "abs_secret"},
        {"file": "/etc/hostname", "call_id": "etc_hostname"},
        {"file": "../../../etc/passwd", "call_id": "etc_passwd"},
        {"file": "link_etc.wav", "call_id": "link_etc"},
        {"file": "dangling.wav", "call_id": "dangling"},
        {"file": "x.wav", "call_id": "folder"},
        {"file": "noise.json", "call_id": "noise"},
        {"file": "six.wav", "call_id": "six"},
        {"file": "long.json", "call_id": "long", "rubric": "zh_bank_hotline"},
        {"file": GOOD[0] + ".json", "call_id": "rubric_etc", "rubric": "/etc/passwd"},
        {"file": GOOD[0] + ".json", "call_id": "rubric_out", "rubric": "../outside/evil.yaml"},
        {
            "file": "garbage_with_unknown_rubric.wav",
            "call_id": "unknown_rubric",
            "rubric": "zh_nonexistent",
        },
        {"file": GOOD[1] + ".json", "call_id": GOOD[0]},  # duplicate id
    ]
    with (archive / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file", "call_id", "rubric"])
        writer.writeheader()
        writer.writerows(rows)
    return archive, outside


FAILED_BECAUSE = {
    "link_out": "outside",
    "rel_secret": "outside",
    "abs_secret": "outside",
    "etc_hostname": "outside",
    "etc_passwd": "outside",
    "link_etc": "outside",
    "dangling": "dangling",
    "folder": "folder",
    "noise": "no speech",
    "six": "6 audio channels",
    "rubric_etc": "outside",
    "rubric_out": "outside",
    "unknown_rubric": "unknown rubric",
    f"{GOOD[0]}~2": "already used",
    "clash~2": "already used",  # clash.wav: the later side of a clash of stems
    "new_line.json": "not listed",
}


@pytest.fixture()
def hostile(tmp_path) -> Path:
    return hostile_archive(tmp_path)[0]


def _settings(tmp_path: Path, **kw):
    return load_settings(database_url=f"sqlite:///{tmp_path / 'qa.db'}", **kw)


def _run(processor: CallProcessor, jobs, run_id=None) -> dict:
    return {job.call_id: processor.process(job, run_id) for job in jobs}


@pytest.mark.slow
def test_hostile_archive_scores_the_good_calls_and_records_the_rest(hostile, tmp_path):
    processor = CallProcessor(_settings(tmp_path))
    jobs = discover(hostile)
    started = time.perf_counter()
    outcomes = _run(processor, jobs)
    seconds = time.perf_counter() - started

    scored = {c for c, o in outcomes.items() if o.status == "scored"}
    assert scored == {*GOOD, "clash", "long"}, outcomes
    for call_id, why in FAILED_BECAUSE.items():
        assert outcomes[call_id].status == "failed", outcomes[call_id]
        assert why in outcomes[call_id].error, outcomes[call_id]
    # nothing skipped silently: every job is in the store, scored or failed
    stored = {r["call_id"]: r for r in processor.store.list_calls()}
    assert set(stored) == {j.call_id for j in jobs}
    assert any("UTF-8" in r["error"] for r in stored.values() if r["error"])
    # nothing outside the archive was read: the secret's text is nowhere in the store
    for call_id in scored:
        text = " ".join(u.text for u in processor.store.get_transcript(call_id).utterances)
        assert "SECRET-OUTSIDE" not in text, call_id
    # an unknown manifest rubric fails before the (garbage) audio is decoded
    assert "not audio" not in outcomes["unknown_rubric"].error
    assert seconds < 300, f"hostile archive took {seconds:.0f} s"


def test_no_speech_is_never_passed(tmp_path):
    processor = CallProcessor(_settings(tmp_path, min_speech_s=2.0))
    archive = tmp_path / "a"
    archive.mkdir()
    base = json.loads((ZH / "bank_001_compliant.json").read_text("utf-8"))
    mumble = {**base, "utterances": [{**base["utterances"][0], "start": 0.0, "end": 0.5}]}
    (archive / "mumble.json").write_text(json.dumps(mumble, ensure_ascii=False), "utf-8")
    (archive / "empty.json").write_text(json.dumps({**base, "utterances": []}), "utf-8")
    outcomes = _run(processor, discover(archive))
    for call_id in ("mumble", "empty"):
        assert outcomes[call_id].status == "failed"
        assert outcomes[call_id].error.startswith(f"{archive}/{call_id}.json: no speech")


def test_six_channels_need_a_manifest_mapping(tmp_path):
    archive = tmp_path / "a"
    archive.mkdir()
    _wav(archive / "six.wav", channels=6, seconds=2)
    (archive / "manifest.csv").write_text(
        "file,call_id,agent_channel,customer_channel\n"
        "six.wav,unmapped,,\n"
        "six.wav,mapped,4,1\n"
        "six.wav,bad_map,4,6\n",
        encoding="utf-8",
    )
    processor = CallProcessor(_settings(tmp_path))
    jobs = {j.call_id: j for j in discover(archive)}
    for call_id in ("unmapped", "bad_map"):
        with pytest.raises(Exception, match="6 audio channels.*agent_channel and customer_channel"):
            processor.admit(processor.plan(jobs[call_id]))
    budget = processor.admit(
        processor.plan(jobs["mapped"])
    )  # admitted: the two named channels are the call
    assert budget.seconds == pytest.approx(120 + 4.0 * 2, abs=0.1)

    from pipeline.process import _mapped_parties
    from pipeline.transcribe.call import decode_for_asr

    decoded = decode_for_asr(jobs["mapped"].source, processor.settings)
    audio, agent = _mapped_parties(jobs["mapped"], decoded)
    assert audio.n_channels == 2 and agent == 0
    assert np.array_equal(np.asarray(audio.channels), np.asarray(decoded.channels)[[4, 1]])
    # spooled (a long call decoded to disk): the same pair, read from disk
    spooled = decode_for_asr(
        jobs["mapped"].source, processor.settings.model_copy(update={"spool_audio_minutes": 0.01})
    )
    audio, agent = _mapped_parties(jobs["mapped"], spooled)
    assert audio.spooled and agent == 0
    assert np.array_equal(np.asarray(audio.channels), np.asarray(decoded.channels)[[4, 1]])


@pytest.mark.slow
def test_a_call_over_its_time_budget_fails_and_the_batch_goes_on(hostile, tmp_path):
    # 0.3 s for any call: the 20,000-utterance transcript cannot make it, small ones can
    processor = CallProcessor(_settings(tmp_path, call_time_floor_s=2.0, call_time_per_audio_s=0))
    jobs = [j for j in discover(hostile) if j.call_id in ("long", GOOD[0])]
    warm = CallProcessor(load_settings(database_url=f"sqlite:///{tmp_path / 'warm.db'}"))
    warm.process(jobs[0])  # tokenisers and models loaded outside the budget
    processor.rubric_for(jobs[0], "zh")
    outcomes = _run(processor, jobs)
    assert outcomes["long"].status == "failed"
    assert "over its time budget of 2 s" in outcomes["long"].error
    assert outcomes[GOOD[0]].status == "scored"


@pytest.mark.slow
def test_rerun_does_not_redo_or_duplicate_failures(hostile, tmp_path):
    settings = _settings(tmp_path)
    jobs = discover(hostile)
    first = _run(CallProcessor(settings), jobs)
    failed = {c for c, o in first.items() if o.status == "failed"}
    store = CallProcessor(settings).store
    rows_before = {c: store.failures(c) for c in failed}
    assert all(len(r) == 1 for r in rows_before.values())

    decoded: list[str] = []
    again = CallProcessor(settings, hook=lambda step, _: decoded.append(step))
    second = _run(again, jobs)
    assert {c for c, o in second.items() if o.status == "failed"} == failed
    assert decoded == [], "a failed, unchanged call was analysed again"
    for call_id in ("noise", "six", "unknown_rubric"):  # analysed and failed: not again
        assert "not retried" in second[call_id].error, second[call_id]
    assert {c: len(store.failures(c)) for c in failed} == {c: 1 for c in failed}

    # the file changed: retried; asked to: retried; failure rows updated, not added
    (hostile / "noise.json").write_text(
        json.dumps({"call_id": "noise", "language": "zh", "duration": 31.0, "utterances": []}),
        "utf-8",
    )
    third = _run(CallProcessor(settings), [j for j in jobs if j.call_id == "noise"])
    assert "no speech" in third["noise"].error and "not retried" not in third["noise"].error
    retry = CallProcessor(settings.model_copy(update={"retry_failed": True}))
    fourth = _run(retry, [j for j in jobs if j.call_id == "six"])
    assert "not retried" not in fourth["six"].error
    assert [f["attempts"] for f in store.failures("six")] == [2]
    assert len(store.failures("noise")) == 2  # a new file content: a new failure row


def test_concurrent_runs_claim_calls(tmp_path):
    settings = _settings(tmp_path)
    store = CallProcessor(settings).store
    run_a = store.start_run("a", {})
    run_b = store.start_run("b", {})
    assert store.claim("c1", run_a, ttl_s=60)
    assert not store.claim("c1", run_b, ttl_s=60)  # held by the other run
    assert store.claim("c1", run_a, ttl_s=60)  # a run may renew its own claim
    assert store.claim("c2", run_b, ttl_s=0.01)
    time.sleep(0.05)
    assert store.claim("c2", run_a, ttl_s=60)  # expired: taken over
    store.release("c1", run_a)
    assert store.claim("c1", run_b, ttl_s=60)

    archive = tmp_path / "a"
    archive.mkdir()
    shutil.copy(ZH / f"{GOOD[0]}.json", archive / f"{GOOD[0]}.json")
    [job] = discover(archive)
    assert store.claim(job.call_id, run_b, ttl_s=60)
    outcome = CallProcessor(settings).process(job, run_a)
    assert outcome.status == "busy" and store.list_calls() == []


def test_killed_run_is_closed_on_next_start(tmp_path):
    from pipeline.store import models as m

    store = CallProcessor(_settings(tmp_path)).store
    killed = store.start_run("a", {})
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid that is gone
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    with Session(store.engine) as s, s.begin():
        s.execute(update(m.Run).where(m.Run.id == killed).values(pid=child.pid))
    live = store.start_run("b", {})
    with Session(store.engine) as s:
        runs = {r.id: r for r in s.query(m.Run)}
    assert runs[killed].status == "killed" and runs[killed].finished_at is not None
    assert runs[live].status == "running" and runs[live].finished_at is None


def test_store_unwritable_mid_run_stops_without_redoing_asr(tmp_path):
    from sqlalchemy import event

    settings = _settings(tmp_path)
    archive = tmp_path / "a"
    archive.mkdir()
    for name in GOOD:
        shutil.copy(ZH / f"{name}.json", archive / f"{name}.json")
    jobs = discover(archive)
    analysed: list[str] = []
    processor = CallProcessor(settings)
    assert processor.process(jobs[0]).status == "scored"
    engine = processor.store.engine

    def _read_only(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA query_only = ON")

    def hook(step, _artefact):
        analysed.append(step)
        if step == "result":  # the store turns read-only between analysis and commit
            engine.dispose()
            event.listen(engine, "connect", _read_only)

    processor.hook = hook
    started = time.perf_counter()
    with pytest.raises(StoreDown, match="readonly"):
        processor.process(jobs[1])
    assert time.perf_counter() - started < 30  # no retries with backoff for a read-only store
    assert analysed.count("result") == 1  # analysed once, not once per retry
    event.remove(engine, "connect", _read_only)
    engine.dispose()
    assert [r["call_id"] for r in processor.store.list_calls()] == [jobs[0].call_id]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--rubric", "{tmp}/broken.yaml"], "rubric"),
        (["--db", "postgresql://nobody@127.0.0.1:1/none"], "store"),
        (["--db", "mysql://x/y"], "unsupported database"),
        (["--routing-env", "{tmp}/routing.yaml"], "routing table"),
    ],
)
def test_bad_configuration_fails_fast_with_one_line(tmp_path, args, message):
    archive = tmp_path / "a"
    archive.mkdir()
    shutil.copy(ZH / f"{GOOD[0]}.json", archive / f"{GOOD[0]}.json")
    (tmp_path / "broken.yaml").write_text("id: x\nitems: [\n", "utf-8")
    (tmp_path / "routing.yaml").write_text(
        "version: 1\nroutes: [{match: {team: x}, rubric: nope}]\n", "utf-8"
    )
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--db" not in args:
        args += ["--db", f"sqlite:///{tmp_path}/qa.db"]
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    if args[0] == "--routing-env":  # the routing table comes from QA_ROUTING
        env["QA_ROUTING"], args = args[1], args[2:]
    started = time.perf_counter()
    out = subprocess.run(
        [*CALLQA, "run", str(archive), *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert time.perf_counter() - started < 60
    # Prefect's API server starts first (in its own process), but no flow run was created
    # and the server did not outlive the refusal.
    assert _prefect_flow_runs(tmp_path / "prefect") == 0
    assert not _servers_with_home(tmp_path / "prefect")


def _prefect_flow_runs(home: Path) -> int:
    import sqlite3

    if not (home / "prefect.db").exists():
        return 0
    with contextlib.closing(sqlite3.connect(home / "prefect.db")) as db:
        tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
        return (
            db.execute("select count(*) from flow_run").fetchone()[0] if "flow_run" in tables else 0
        )


def _servers_with_home(home: Path) -> list[int]:
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            command = " ".join(proc.info["cmdline"] or [])
            if "prefect.server.api.server:create_app" in command and proc.environ().get(
                "PREFECT_HOME"
            ) == str(home):
                found.append(proc.info["pid"])
        except psutil.Error:
            continue
    return found


def test_summary_prints_undecodable_names():
    from pipeline.process import CallOutcome
    from pipeline.summary import summarise

    bad = os.fsdecode(b"caf\xe9\n.wav")
    outcome = CallOutcome(call_id=bad, source=bad, status="failed", error=f"{bad}: broken")
    text = summarise([outcome], run_id=1, archive=bad, database_url="sqlite://").render()
    text.encode("utf-8")
    assert "caf\\xe9\\n.wav" in text


def test_read_only_store_is_refused_before_the_run(tmp_path):
    from sqlalchemy import event

    from pipeline.preflight import PreflightFailed, check_store
    from pipeline.store.db import get_engine

    url = f"sqlite:///{tmp_path / 'qa.db'}"
    check_store(url)  # writable: fine
    engine = get_engine(url)
    engine.dispose()

    def _read_only(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA query_only = ON")

    event.listen(engine, "connect", _read_only)
    try:
        with pytest.raises(PreflightFailed, match="not writable.*readonly"):
            check_store(url)
    finally:
        event.remove(engine, "connect", _read_only)
        engine.dispose()


# --------------------------------------------------------------------------- bounded checks


def _regex_rubric(tmp_path: Path, pattern: str) -> Path:
    import yaml

    data = {
        "id": "t",
        "version": 1,
        "language": "zh",
        "title": "t",
        "sections": [
            {
                "id": "s",
                "title": "s",
                "items": [
                    {"id": "x", "title": "x", "points": 1, "check": {"regex": {"pattern": pattern}}}
                ],
            }
        ],
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?<=您好)工号", r"(?=x)y"])
def test_rubric_check_rejects_patterns_re2_cannot_take(tmp_path, pattern):
    path = _regex_rubric(tmp_path, pattern)
    out = subprocess.run(
        [*CALLQA, "rubric", "check", str(path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0
    assert "RE2" in out.stderr and "check.regex.pattern" in out.stderr, out.stderr


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"^(\w+\s?)*$"])
def test_catastrophic_patterns_run_in_linear_time(tmp_path, pattern):
    from pipeline.scripts_check import check_items, load_rubric

    rubric = load_rubric(_regex_rubric(tmp_path, pattern))
    text = "a" * 30_000 + "!" if "a+" in pattern else "您好 这是 一段 很长的 通话 " * 3000 + "！"
    transcript = long_transcript(2)
    transcript.utterances[0].text = text
    started = time.perf_counter()
    check_items(transcript, rubric)
    assert time.perf_counter() - started < 5


def _interruptions_quadratic(transcript, lang, min_overlap):
    """The former all-pairs definition, as the reference on small transcripts."""
    from pipeline.scripts_check.conversation import BACKCHANNEL_UNITS, _units

    utts, out = transcript.utterances, set()
    for k, b in enumerate(utts):
        if b.speaker == "unknown" or _units(b.text, lang) <= BACKCHANNEL_UNITS.get(lang, 2):
            continue
        for a in utts:
            if a is b or a.speaker in (b.speaker, "unknown"):
                continue
            if a.start < b.start < a.end and min(a.end, b.end) - b.start >= min_overlap:
                out.add((k, b.speaker))
                break
    return out


def test_interruptions_sweep_matches_the_all_pairs_definition():
    import random

    from pipeline.schema import Transcript
    from pipeline.scripts_check.conversation import interruptions

    rng = random.Random(7)
    for _ in range(200):
        utts, t = [], 0.0
        for _ in range(rng.randint(0, 25)):
            t += rng.choice([0.0, 0.2, 0.5, 1.0, 3.0])
            start = max(0.0, t - rng.choice([0.0, 0.3, 0.6, 2.0]))
            utts.append(
                {
                    "speaker": rng.choice(["agent", "customer", "unknown"]),
                    "start": round(start, 2),
                    "end": round(start + rng.choice([0.4, 1.0, 2.5, 6.0]), 2),
                    "text": rng.choice(["嗯", "好的", "我想问一下账单的事情", "请您稍等一下"]),
                }
            )
        transcript = Transcript.model_validate({"language": "zh", "utterances": utts})
        got = {(x["utterance"], x["by"]) for x in interruptions(transcript, "zh", 0.5)}
        assert got == _interruptions_quadratic(transcript, "zh", 0.5)


@pytest.mark.slow
def test_sigterm_stops_within_seconds_and_the_next_start_closes_the_run(tmp_path):
    import signal

    from sqlalchemy.orm import Session

    from pipeline.store import models as m
    from pipeline.store import open_store

    archive = tmp_path / "a"
    archive.mkdir()
    samples = sorted(ZH.glob("*.json"))
    for i in range(60):
        shutil.copy(samples[i % len(samples)], archive / f"call-{i:03d}.json")
    db_url = f"sqlite:///{tmp_path / 'qa.db'}"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "QA_MAX_CONCURRENCY": "1"}
    proc = subprocess.Popen(
        [*CALLQA, "run", str(archive), "--db", db_url],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        store = open_store(db_url)
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and proc.poll() is None:
            if any(r["status"] == "scored" for r in store.list_calls()):
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be stopped"
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        proc.wait(timeout=30)
        assert time.monotonic() - sent <= 10, f"SIGTERM took {time.monotonic() - sent:.1f} s"
    finally:  # the whole process group: the run and its temporary Prefect server
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    stored = store.list_calls()
    assert 0 < len(stored) < 60
    assert all(r["status"] == "scored" for r in stored)  # complete calls only, none half-written
    for row in stored:
        assert store.get_result(row["call_id"]) is not None

    store.start_run("next", {})  # the next start closes the killed run's row
    with Session(store.engine) as s:
        first = s.get(m.Run, 1)
    assert first.finished_at is not None and first.status == "killed"
    assert first.scored == len(stored)


@pytest.mark.slow
def test_white_noise_recording_fails_as_no_speech(tmp_path):
    """30 s of white noise through the real model: not a call, so never scored as one."""
    archive = tmp_path / "a"
    archive.mkdir()
    _wav(archive / "noise.wav", channels=2, seconds=30, rate=8000)
    processor = CallProcessor(_settings(tmp_path))
    [job] = discover(archive)
    outcome = processor.process(job)
    assert outcome.status == "failed" and "no speech" in outcome.error, outcome
    assert processor.store.get_result("noise") is None


@pytest.mark.slow
def test_hostile_archive_through_callqa_run_twice(tmp_path):
    """The issue's check: ``callqa run`` over the hostile archive, then again."""
    archive, _ = hostile_archive(tmp_path)
    db_url = f"sqlite:///{tmp_path / 'qa.db'}"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    cmd = [*CALLQA, "run", str(archive), "--db", db_url, "--json"]
    runs = []
    for _ in range(2):
        started = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        assert out.returncode == 0, out.stderr[-3000:]
        runs.append((json.loads(out.stdout), time.perf_counter() - started))
    (first, t1), (second, t2) = runs
    good = {*GOOD, "clash", "long"}
    assert first["scored"] == len(good) and first["calls"] == len(discover(archive))
    assert {f["call_id"] for f in first["failures"]} >= set(FAILED_BECAUSE)
    assert second["scored"] == 0 and second["skipped"] == len(good)
    assert second["not_retried"] >= 3 and second["failed"] == first["failed"]
    assert t1 < 600 and t2 < 300, (t1, t2)


def test_two_runs_at_once_score_each_call_once(tmp_path):
    import threading

    archive = tmp_path / "a"
    archive.mkdir()
    samples = sorted(ZH.glob("*.json"))
    for i in range(12):
        shutil.copy(samples[i % len(samples)], archive / f"call-{i:02d}.json")
    jobs = discover(archive)
    settings = _settings(tmp_path)
    CallProcessor(settings).process(jobs[0])  # models and tokenisers loaded before the race
    outcomes: dict[str, list] = {}

    def run(name: str) -> None:
        processor = CallProcessor(settings)
        run_id = processor.store.start_run(name, {})
        outcomes[name] = [processor.process(job, run_id) for job in jobs[1:]]

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    scored = [o.call_id for name in ("a", "b") for o in outcomes[name] if o.status == "scored"]
    assert sorted(scored) == sorted(j.call_id for j in jobs[1:])  # each call once, by one run
    others = {o.status for name in ("a", "b") for o in outcomes[name] if o.status != "scored"}
    assert others <= {"busy", "skipped"}
