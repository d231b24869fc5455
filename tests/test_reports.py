"""KPI report: every figure recomputed here straight from the store's stored results."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from pipeline.cli import cli
from pipeline.reports import Period, build_report, write_report
from tests.builders import COACH_CALLS, build_archive


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return build_archive(tmp_path_factory.mktemp("archive"))


@pytest.fixture(scope="module")
def report_dir(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    res = CliRunner().invoke(cli, ["report", "--db", archive.url, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "(5 calls)" in res.output
    return out


def _stored(archive) -> list[dict]:
    return [r for r in archive.store.list_calls() if r["status"] == "scored"]


def test_files_exist_and_html_references_resolve(report_dir):
    for name in ("report.html", "agents.csv", "items.csv", "daily.csv", "teams.csv",
                 "calls.csv", "report.xlsx", "summary.json"):  # fmt: skip
        assert (report_dir / name).is_file(), name
    html = (report_dir / "report.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert len([r for r in refs if r.endswith(".png")]) == 4
    for ref in refs:
        assert not ref.startswith(("http:", "https:", "/")), ref
        assert (report_dir / ref).is_file(), ref


def test_csv_files_open_in_excel_as_utf8(tmp_path):
    """Every CSV of the report starts with a UTF-8 BOM (Excel reads it as UTF-8 only then),
    written by the one CSV writer of every export: a Chinese name survives, a formula does
    not become one, rows end in CRLF."""
    from pipeline.cells import csv_lines, write_csv

    frame = pd.DataFrame({"team": ["华东一组", "=1+1"], "calls": [3, 4]})
    write_csv(frame, tmp_path / "t.csv")
    raw = (tmp_path / "t.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfteam,calls\r\n")
    assert raw.decode("utf-8-sig").splitlines() == ["team,calls", "华东一组,3", "'=1+1,4"]
    assert "".join(csv_lines(["team", "calls"], [{"team": "华东一组", "calls": 3}])) == raw.decode("utf-8")[: -len("'=1+1,4\r\n")]  # fmt: skip


def test_report_csvs_carry_the_bom(report_dir):
    for name in ("agents.csv", "items.csv", "daily.csv", "teams.csv", "calls.csv"):
        assert (report_dir / name).read_bytes().startswith(b"\xef\xbb\xbf"), name


def test_agents_mean_score_is_the_mean_of_stored_scores(archive, report_dir):
    agents = pd.read_csv(report_dir / "agents.csv")
    assert list(agents.columns[:5]) == ["agent_id", "agent_name", "team", "calls", "mean_score_pct"]
    per_agent = defaultdict(list)
    for row in _stored(archive):
        per_agent[row["agent_id"]].append(100 * row["total"] / row["max"])
    assert sorted(agents["agent_id"]) == sorted(per_agent) == ["A1", "A2"]
    for row in agents.to_dict("records"):
        scores = per_agent[row["agent_id"]]
        assert row["calls"] == len(scores)
        assert _close(row["mean_score_pct"], sum(scores) / len(scores))
    a2 = agents.set_index("agent_id").loc["A2"]
    assert (a2["agent_name"], a2["team"], a2["auto_fail"]) == ("Bob Stone", "South", 1)
    assert (a2["risk_high"], a2["risk_medium"], a2["risk_low"]) == (1, 1, 1)


def test_items_pass_rate_is_script_adherence(archive, report_dir):
    items = pd.read_csv(report_dir / "items.csv").set_index("item_id")
    passed, seen = defaultdict(int), defaultdict(int)
    for call_id in COACH_CALLS:
        for item in archive.store.get_result(call_id).items:
            if item.applicable and item.passed is not None:
                seen[item.id] += 1
                passed[item.id] += item.passed
    assert set(items.index) == set(seen)
    for item_id, n in seen.items():
        assert _close(items.loc[item_id, "pass_rate"], passed[item_id] / n)
        assert items.loc[item_id, "failed"] == n - passed[item_id]
    assert items.loc["no_forbidden", "critical"]
    assert list(items.index)[:2] == ["greeting", "identity_check"]  # rubric order


def test_daily_trend_and_summary(archive, report_dir):
    daily = pd.read_csv(report_dir / "daily.csv")
    stored = _stored(archive)
    by_day = defaultdict(list)
    for row in stored:
        by_day[row["started_at"][:10]].append(100 * row["total"] / row["max"])
    assert list(daily["day"]) == sorted(by_day)
    for row in daily.to_dict("records"):
        assert row["calls"] == len(by_day[row["day"]])
        assert _close(row["mean_score_pct"], sum(by_day[row["day"]]) / len(by_day[row["day"]]))

    summary = json.loads((report_dir / "summary.json").read_text())
    assert summary["calls"] == len(stored) == 5
    assert summary["auto_fail"] == sum(r["auto_fail"] for r in stored)
    assert _close(summary["needs_review_rate"], sum(r["needs_review"] for r in stored) / 5)
    assert (summary["risk_low"], summary["risk_medium"], summary["risk_high"]) == (3, 1, 1)
    assert summary["error_rate"] == 3 / 5  # c2, c3, c4 each failed an item
    assert summary["overturn_rate"] is None  # nothing reviewed yet


def test_excel_workbook_matches_the_csvs(report_dir):
    book = load_workbook(report_dir / "report.xlsx", read_only=True)
    assert {"Summary", "Agents", "Teams", "Items", "Daily", "Calls"} <= set(book.sheetnames)
    rows = list(book["Agents"].values)
    header, body = rows[0], rows[1:]
    agents = pd.read_csv(report_dir / "agents.csv")
    i = header.index("mean_score_pct")
    # Excel keeps 15 significant digits
    assert all(_close(r[i], v) for r, v in zip(body, agents["mean_score_pct"], strict=True))


def test_html_is_a_readable_report(report_dir):
    html = (report_dir / "report.html").read_text()
    for text in ("calls scored", "mean score", "auto-fails", "Script adherence", "By agent",
                 "Bob Stone", "reviewer overturn rate", "n/a"):  # fmt: skip
        assert text in html, text


@pytest.mark.parametrize(
    ("args", "calls", "days"),
    [
        (["--since", "2026-11-02"], 3, ["2026-11-02", "2026-11-03"]),
        (["--until", "2026-11-01"], 2, ["2026-11-01"]),
        (["--since", "2026-11-02", "--until", "2026-11-02", "--by", "team"], 2, ["2026-11-02"]),
        (["--by", "day"], 5, ["2026-11-01", "2026-11-02", "2026-11-03"]),
    ],
)
def test_period_and_breakdown(archive, tmp_path, args, calls, days):
    res = CliRunner().invoke(cli, ["report", "--db", archive.url, *args, "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert list(pd.read_csv(tmp_path / "daily.csv")["day"]) == days
    assert pd.read_csv(tmp_path / "agents.csv")["calls"].sum() == calls
    by = args[args.index("--by") + 1] if "--by" in args else "agent"
    assert f"<h2>By {by}</h2>" in (tmp_path / "report.html").read_text()


def test_empty_period_says_so_and_exits_0(archive, tmp_path):
    out = tmp_path / "r"
    res = CliRunner().invoke(
        cli, ["report", "--db", archive.url, "--since", "2027-01-01", "--out", str(out)]
    )
    assert res.exit_code == 0
    assert "no scored calls in 2027-01-01 to …; nothing written" in res.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "01/11/2026"], "--since: '01/11/2026' is not a date (expected YYYY-MM-DD)"),
        (["--until", "2026-02-30"], "--until: '2026-02-30' is not a date"),
        (["--since", "2026-11-03", "--until", "2026-11-01"],
         "--since 2026-11-03 is after --until 2026-11-01"),
        (["--by", "week"], "Invalid value for '--by'"),
    ],
)  # fmt: skip
def test_bad_filters_rejected(archive, tmp_path, args, message):
    res = CliRunner().invoke(
        cli, ["report", "--db", archive.url, *args, "--out", str(tmp_path / "r")]
    )
    assert res.exit_code != 0
    assert message in res.output
    assert not (tmp_path / "r").exists()


def test_review_overturns_and_final_scores(tmp_path):
    """A reviewer overturns c2's greeting: the machine figures stay, the final ones and the
    overturn rate move, and the per-item overturn rate agrees with the review app's
    calibration."""
    review = pytest.importorskip("pipeline.store.review")
    arch = build_archive(tmp_path)
    rs = review.ReviewStore(arch.store)
    viewer = review.Scope(user_id=rs.add_user("rita", "password123", "reviewer").id, all_calls=True)
    greeting = next(i for i in rs.final_score(viewer, "c2").items if i.id == "greeting")
    final = rs.override(viewer, "c2", greeting.item_result_id, True, comment="greeted in Spanish")
    rs.confirm(viewer, "c4")

    report = build_report(arch.store, Period())
    paths = write_report(report, tmp_path / "out", by="agent")
    agents = pd.read_csv(paths["agents"]).set_index("agent_id")
    machine = [100 * r["total"] / r["max"] for r in _stored(arch) if r["agent_id"] == "A1"]
    assert _close(agents.loc["A1", "mean_score_pct"], sum(machine) / len(machine))
    c1 = arch.store.get_result("c1")
    expected_final = (100 * c1.total / c1.max + 100 * final.total / final.max) / 2
    assert _close(agents.loc["A1", "final_mean_score_pct"], expected_final)

    items = pd.read_csv(paths["items"]).set_index("item_id")
    for row in rs.calibration():
        assert items.loc[row.item_id, "reviewed"] == row.reviewed
        assert items.loc[row.item_id, "overturned"] == row.overturned
        if row.overturn_rate is not None:
            assert _close(items.loc[row.item_id, "overturn_rate"], row.overturn_rate)
    assert items.loc["greeting", "final_pass_rate"] == 1.0
    # 10 items reviewed (c2 and c4, five each), one overturned
    assert report.summary["reviewed_items"] == 10 and report.summary["overturned_items"] == 1
    assert _close(report.summary["overturn_rate"], 0.1)
    assert "10.0%" in Path(paths["html"]).read_text()
