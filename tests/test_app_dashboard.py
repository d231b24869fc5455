"""The dashboard and the team roles, server side: each role's scope through the dashboard,
its drill-down links, its exports and the API; every linked number equals the count of the
queue it opens; the figures agree with ``callqa report``; the previous period's change.

The store is tests.builders' review store (4 calls: agent A1 in team T1, A2 in T2) with a
team lead of T1, a manager, an overridden item (reviewed call) and an open dispute.
"""

from __future__ import annotations

import csv
import io
import re
from html import unescape

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from pipeline.app.permissions import scope_of
from pipeline.reports.data import Period
from pipeline.reports.kpi import build_report
from pipeline.schema import CallJob
from pipeline.store.dashboard import drill_down
from pipeline.store.review import QueueFilter, ReviewError, ReviewStore
from tests.builders import PASSWORD, item_ids, login, make_result, make_transcript, queue_ids

ALL = ["c-a1-1", "c-a1-2", "c-a2-1", "c-a2-2"]
# user -> (role, teams, the calls they must reach: no more, no fewer)
PEOPLE = {
    "admin": ("admin", (), ALL),
    "mgr": ("manager", (), ALL),
    "lead1": ("team_lead", ("T1",), ["c-a1-1", "c-a1-2"]),
    "lead2": ("team_lead", ("T2", "T9"), ["c-a2-1", "c-a2-2"]),
    "agent1": ("agent", (), ["c-a1-1", "c-a1-2"]),
    "agent2": ("agent", (), ["c-a2-1", "c-a2-2"]),
}
AGENT_OF = {"c-a1-1": "A1", "c-a1-2": "A1", "c-a2-1": "A2", "c-a2-2": "A2"}
TEAM_OF = {"A1": "T1", "A2": "T2"}
WHOLE = "?date_from=2026-11-01&date_to=2026-11-30"


@pytest.fixture
def dash(app):
    """The app with the team lead and manager accounts, one reviewed call (an overturned
    item) and one open dispute."""
    reviews: ReviewStore = app.state.reviews
    reviews.add_user("mgr", PASSWORD, "manager")
    reviews.add_user("lead1", PASSWORD, "team_lead", teams=["T1"])
    reviews.add_user("lead2", PASSWORD, "team_lead", teams=["T2", "T9"])
    admin = reviews.authenticate("admin", PASSWORD)
    agent2 = reviews.authenticate("agent2", PASSWORD)
    reviews.override(scope_of(admin), "c-a1-2", item_ids(app, "c-a1-2")["apology"], True, "said sorry")  # fmt: skip
    reviews.dispute(scope_of(agent2), "c-a2-1", item_ids(app, "c-a2-1")["no_forbidden"], "misheard")  # fmt: skip
    return app


def queue_total(client: TestClient, href: str) -> int:
    page = client.get(href)
    assert page.status_code == 200, (href, page.text[:300])
    return int(
        re.search(r'data-testid="queue-total">\D*([\d,]+)', page.text).group(1).replace(",", "")
    )


def linked_counts(html: str) -> list[tuple[str, int]]:
    """(queue href, number shown) of every counted link of a dashboard page."""
    found = re.findall(r'<a href="(/\?[^"]*)"[^>]*data-count="(\d+)"', html)
    return [(unescape(h), int(n)) for h, n in found]


# --------------------------------------------------------------------------- roles


def test_accounts_of_the_new_roles() -> None:
    """A team lead needs teams, others may not have any (table of refused inputs)."""
    from pipeline.store.accounts import _clean_teams

    assert _clean_teams("team_lead", [" T1", "T1", "", "T2"]) == ["T1", "T2"]
    for role, teams, message in [
        ("team_lead", [], "needs --team"),
        ("team_lead", ["  "], "needs --team"),
        ("manager", ["T1"], "only a team_lead has teams"),
        ("agent", ["T1"], "only a team_lead has teams"),
        ("team_lead", ["x" * 256], "at most 255"),
    ]:
        with pytest.raises(ReviewError, match=message):
            _clean_teams(role, teams)


@pytest.mark.parametrize("who", list(PEOPLE))
def test_each_role_reaches_only_its_calls(dash, who: str) -> None:
    """Dashboard figures, rankings, drill-down queues, call pages, CSV and Excel exports and
    the API: the calls of the role's scope, nothing else, even when asked for by filter."""
    role, teams, mine = PEOPLE[who]
    reviews: ReviewStore = dash.state.reviews
    user = reviews.authenticate(who, PASSWORD)
    assert (user.role, user.teams) == (role, tuple(sorted(teams)))
    client = login(dash, who)
    my_agents = {AGENT_OF[c] for c in mine}

    page = client.get("/dashboard" + WHOLE)
    assert page.status_code == 200
    d = reviews.dashboard(scope_of(user), QueueFilter(date_from="2026-11-01", date_to="2026-11-30"))
    assert d.kpis.calls == len(mine)
    assert {r.key for r in d.agents} == my_agents
    assert {r.key for r in d.teams} == {TEAM_OF[a] for a in my_agents}
    assert sum(i.passed + i.failed for i in d.items) == 3 * len(mine)
    shown = re.findall(r'data-testid="agent-calls" data-count="\d+">', page.text)
    assert len(shown) == len(my_agents)

    # every drill-down queue holds only the scope's calls
    for href, _n in linked_counts(page.text):
        ids = re.findall(r'data-testid="call-row" data-call-id="([^"]+)"', client.get(href).text)
        assert set(ids) <= set(mine), href
    # asking for the others by filter gives nothing
    for other in {"A1", "A2"} - my_agents:
        assert reviews.dashboard(scope_of(user), QueueFilter(agent_id=other)).kpis.calls == 0
        assert f'data-count="{0}"' in client.get(f"/dashboard{WHOLE}&agent_id={other}").text
        assert queue_total(client, f"/?agent_id={other}") == 0
        call = next(c for c, a in AGENT_OF.items() if a == other)
        assert client.get(f"/calls/{call}").status_code == 404
    for call in mine:
        assert client.get(f"/calls/{call}").status_code == 200
    found = client.get("/search?q=投诉").text  # every transcript of the store says it
    assert set(re.findall(r'data-testid="call-row" data-call-id="([^"]+)"', found)) == set(mine)

    # exports: the same scope
    agents_csv = list(csv.DictReader(io.StringIO(client.get("/dashboard/export.csv?table=agents&" + WHOLE[1:]).text.lstrip("\ufeff"))))  # fmt: skip
    assert {r["agent_id"] for r in agents_csv} == my_agents
    assert sum(int(r["calls"]) for r in agents_csv) == len(mine)
    book = load_workbook(io.BytesIO(client.get("/dashboard/export.xlsx" + WHOLE).content))
    kpis = {row[0].value: row[1].value for row in book["kpis"].iter_rows(min_row=2)}
    assert kpis["calls"] == len(mine)
    assert {row[0].value for row in book["agents"].iter_rows(min_row=2)} == my_agents

    # the API, with the user's token
    api = TestClient(dash, headers={"Authorization": f"Bearer {reviews.issue_token(who)}"})
    body = api.get("/api/dashboard" + WHOLE).json()
    assert body["kpis"]["calls"] == len(mine)
    assert {r["key"] for r in body["agents"]} == my_agents
    listed = {r["call_id"] for r in api.get("/api/calls?per_page=200").json()["rows"]}
    assert listed == set(mine)


def test_gates_of_the_new_roles(dash) -> None:
    """Managers and team leads see the dashboard, but neither reviews, rules on disputes,
    manages users nor sees the unscoped calibration; a team lead's queue menus list only
    their teams."""
    for who in ("mgr", "lead1"):
        client = login(dash, who)
        assert client.get("/dashboard").status_code == 200
        assert 'data-testid="nav-dashboard"' in client.get("/").text
        for path in ("/users", "/calibration", "/calibration.csv", "/admin/failed"):
            assert client.get(path).status_code == 403, (who, path)
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text).group(1)
        item = item_ids(dash, "c-a1-1")["greeting"]
        r = client.post(f"/calls/c-a1-1/items/{item}/override", data={"csrf_token": token, "verdict": "fail", "comment": "x"})  # fmt: skip
        assert r.status_code == 403, who
    lead_queue = login(dash, "lead1").get("/").text
    assert re.findall(r'<option value="(T\d)"', lead_queue) == ["T1"]


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("who", ["admin", "lead2", "agent1"])
@pytest.mark.parametrize("query", [WHOLE, WHOLE + "&grain=week", "?date_from=2026-11-02&date_to=2026-11-04&risk_level=low", ""])  # fmt: skip
def test_every_number_opens_a_queue_of_that_many_calls(dash, who: str, query: str) -> None:
    """Tiles, item fail counts and ranking counts: the queue behind each link counts
    exactly the number shown; so do the trend's points."""
    client = login(dash, who)
    page = client.get("/dashboard" + query).text
    links = linked_counts(page)
    assert links, "no counted links on the page"
    for href, shown in links:
        assert queue_total(client, href) == shown, href
    reviews: ReviewStore = dash.state.reviews
    scope = scope_of(reviews.authenticate(who, PASSWORD))
    params = dict(p.split("=") for p in query[1:].split("&") if p and not p.startswith("grain"))
    d = reviews.dashboard(scope, QueueFilter(**params), "week" if "week" in query else "day")
    assert d.trend and sum(t.calls for t in d.trend) == d.kpis.calls
    # both charts' points are among the counted links checked above
    assert page.count('data-testid="chart-score-point"') == page.count('data-testid="chart-risk-point"') == len(d.trend)  # fmt: skip
    for t in d.trend:
        f = QueueFilter(**drill_down(d.filters, date_from=t.start, date_to=t.end))
        assert reviews.queue(scope, f).total == t.calls


@pytest.mark.parametrize("since,until", [("2026-11-01", "2026-11-30"), ("2026-11-02", "2026-11-03")])  # fmt: skip
def test_figures_agree_with_callqa_report(dash, since: str, until: str) -> None:
    """Calls, mean score, auto-fail, high risk, reviewed calls, overturn rate, the days, the
    agents, the teams and each item's pass rate: ``callqa report`` reads the dashboard's
    store queries, so for the same days they are the same numbers (and the expected ones)."""
    reviews: ReviewStore = dash.state.reviews
    admin = reviews.authenticate("admin", PASSWORD)
    d = reviews.dashboard(scope_of(admin), QueueFilter(date_from=since, date_to=until))
    report = build_report(reviews.store, Period.parse(since, until))
    s = report.summary
    assert d.kpis.calls == s["calls"]
    assert d.kpis.mean_score_pct == pytest.approx(s["mean_score_pct"])
    assert d.kpis.auto_fail == s["auto_fail"]
    assert d.kpis.high_risk == s["risk_high"]
    assert d.kpis.reviewed == s["reviewed_calls"]
    assert d.kpis.overturned_items == s["overturned_items"]
    assert d.kpis.reviewed_items == s["reviewed_items"]
    assert d.kpis.overturn_rate == (pytest.approx(s["overturn_rate"]) if s["overturn_rate"] is not None else None)  # fmt: skip
    by_item = {(r.rubric_id, r.item_id): (r.passed, r.failed, r.pass_rate) for r in d.items}
    assert len(by_item) == len(report.items)
    for _, row in report.items.iterrows():
        passed, failed, rate = by_item[(row["rubric_id"], row["item_id"])]
        assert (passed, failed) == (row["passed"], row["failed"])
        assert rate == pytest.approx(row["pass_rate"])
    agents = {r.key: (r.calls, pytest.approx(r.mean_score_pct), r.auto_fail, r.high_risk) for r in d.agents}  # fmt: skip
    assert agents == {row["agent_id"]: (row["calls"], row["mean_score_pct"], row["auto_fail"], row["risk_high"]) for _, row in report.agents.iterrows()}  # fmt: skip
    teams = {r.key: (r.calls, pytest.approx(r.mean_score_pct)) for r in d.teams}
    assert teams == {row["team"]: (row["calls"], row["mean_score_pct"]) for _, row in report.teams.iterrows()}  # fmt: skip
    days = {t.start: (t.calls, pytest.approx(t.mean_score_pct), t.high_risk) for t in d.trend}
    assert days == {row["day"]: (row["calls"], row["mean_score_pct"], row["risk_high"]) for _, row in report.daily.iterrows()}  # fmt: skip
    if since == "2026-11-01":  # the expected numbers of the store
        assert (s["calls"], s["auto_fail"], s["risk_high"], s["reviewed_calls"], s["overturned_items"]) == (4, 1, 1, 1, 1)  # fmt: skip
        assert s["overturn_rate"] == pytest.approx(1 / 3)
        assert d.kpis.disputed == 1
        assert [r.item_id for r in d.items] == [
            "apology",
            "no_forbidden",
            "greeting",
        ]  # weakest first


@pytest.mark.parametrize("who", ["admin", "lead1", "agent1", "lead2"])
def test_overturn_tile_opens_the_reviewed_calls(dash, who: str) -> None:
    """The overturn rate is of items: its tile says how many of how many, links the
    reviewed calls (its denominator's calls) and the reviewed calls with an overturned item
    (its numerator's), each a queue of that many calls, in the role's scope."""
    client = login(dash, who)
    page = client.get("/dashboard" + WHOLE).text
    tile = re.search(r'data-testid="tile-overturn">(.*?)</div>\s*</div>\s*(<div class="tile-foot muted small".*?</div>)?', page, re.S).group(0)  # fmt: skip
    links = dict((re.search(r'data-testid="([\w-]+)"', a).group(1), (unescape(h), int(n))) for a, h, n in re.findall(r'(<a href="(/\?[^"]*)"[^>]*data-count="(\d+)")', tile))  # fmt: skip
    own = {"admin": 1, "lead1": 1, "agent1": 1, "lead2": 0}[who]  # c-a1-2 (T1, A1) was overturned
    if own:
        assert "已审核 3 项中改判 1 项" in tile  # the interface speaks zh-CN by default
        assert set(links) == {"tile-link-overturn", "tile-link-overturn-calls"}
        assert "review_status=reviewed" in links["tile-link-overturn"][0]
        assert "overturned=1" in links["tile-link-overturn-calls"][0]
        for href, shown in links.values():
            assert queue_total(client, href) == shown == 1, href
        ids = queue_ids(client, links["tile-link-overturn-calls"][0][1:])
        assert ids == ["c-a1-2"]
    else:
        assert links == {} and "已审核 0 项中改判 0 项" in tile


def test_change_against_the_previous_period(dash) -> None:
    """11-03..11-04 (c-a2-1 auto-fails) against 11-01..11-02 (no auto-fail)."""
    client = login(dash, "admin")
    page = client.get("/dashboard?date_from=2026-11-03&date_to=2026-11-04").text
    assert "2026-11-01" in page and "2026-11-02" in page  # the previous period is named
    change = dict(re.findall(r'data-testid="tile-change-(\w+)">([^<]+)<', page))
    assert change["calls"] == "+0"
    assert change["auto_fail"] == "+50.0 pp"
    assert change["high_risk"] == "-50.0 pp"  # c-a1-1 (high) was on 11-01
    assert change["mean_score"] == "-33.3"  # 33.3 now, 66.7 before


def test_bad_filters_are_refused(dash) -> None:
    client = login(dash, "admin")
    assert client.get("/dashboard?risk_level=extreme").status_code == 400
    assert client.get("/dashboard?grain=month").status_code in (400, 422)
    assert client.get("/dashboard/export.csv?table=secrets").status_code in (400, 422)


def test_export_cells_cannot_start_a_formula(dash) -> None:
    """A team named like a formula is written as text in the CSV."""
    reviews: ReviewStore = dash.state.reviews
    job = CallJob(call_id="c-x", source="/dev/null", agent_id="=1+1", team="=HYPERLINK(1)", started_at="2026-11-05T09:00:00")  # fmt: skip
    reviews.store.save_scored(job, make_transcript("c-x"), make_result("c-x", False, False, "low"))
    text = login(dash, "admin").get("/dashboard/export.csv?table=teams&" + WHOLE[1:]).text
    assert "'=HYPERLINK(1)" in text and "\n=HYPERLINK" not in text


def test_exports_take_control_characters_and_a_cr_formula(dash) -> None:
    """A NUL in an agent id made the workbook refuse to save (500); a team starting with a CR
    then '=' became a formula row in the CSV. Both are text now (pipeline.cells)."""
    reviews: ReviewStore = dash.state.reviews
    job = CallJob(call_id="c-y", source="/dev/null", agent_id="A\x00B", team="\r=1+1", started_at="2026-11-05T09:00:00")  # fmt: skip
    reviews.store.save_scored(job, make_transcript("c-y"), make_result("c-y", False, False, "low"))
    client = login(dash, "admin")
    text = client.get("/dashboard/export.csv?table=teams&" + WHOLE[1:]).text.lstrip("\ufeff")
    cells = [c for row in csv.reader(io.StringIO(text, newline="")) for c in row]
    assert "'\r=1+1" in cells
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
    book = client.get("/dashboard/export.xlsx" + WHOLE)
    assert book.status_code == 200
    for sheet in load_workbook(io.BytesIO(book.content)).worksheets:
        for row in sheet.iter_rows():
            assert all(c.data_type != "f" for c in row)
    assert any(c.value == "A\\x00B" for s in load_workbook(io.BytesIO(book.content)).worksheets for row in s.iter_rows() for c in row)  # fmt: skip


def test_dashboard_in_chinese(dash) -> None:
    client = login(dash, "lead1")
    zh = client.get("/dashboard", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).text
    assert "仪表盘" in zh and "平均分" in zh and "一票否决率" in zh and "班组" in zh
    en = client.get("/dashboard", headers={"Accept-Language": "en"}).text
    assert "Dashboard" in en and "Mean score" in en
    # a saved choice wins over the browser's, in the words drawn in Python too (tiles, charts)
    reviews: ReviewStore = dash.state.reviews
    reviews.set_prefs(reviews.authenticate("lead1", PASSWORD).id, language="en")
    saved = client.get("/dashboard", headers={"Accept-Language": "zh-CN"}).text
    assert "Mean score" in saved and "平均分" not in saved


def test_cli_adds_team_leads_and_managers(tmp_path) -> None:
    from click.testing import CliRunner

    from pipeline.cli import cli
    from pipeline.store import dispose_engines, open_store

    url = f"sqlite:///{tmp_path / 'qa.db'}"
    runner = CliRunner()

    def add(*args: str):
        return runner.invoke(cli, ["users", "add", *args, "--password-stdin", "--db", url], input="longpassword\n")  # fmt: skip

    ok = add("zhang", "--role", "team_lead", "--team", "T1", "--team", "华东二组")
    assert ok.exit_code == 0 and "team_lead, T1, 华东二组" in ok.output, ok.output
    assert add("wang", "--role", "manager").exit_code == 0
    no_team = add("li", "--role", "team_lead")
    assert no_team.exit_code != 0 and "needs --team" in no_team.output
    stray = add("zhao", "--role", "manager", "--team", "T1")
    assert stray.exit_code != 0 and "only a team_lead has teams" in stray.output
    reviews = ReviewStore(open_store(url))
    assert reviews.authenticate("zhang", "longpassword").teams == ("T1", "华东二组")
    assert reviews.set_teams("zhang", ["T2"]).teams == ("T2",)
    listed = runner.invoke(cli, ["users", "list", "--db", url]).output
    assert "zhang\tteam_lead\tT2" in listed and "wang\tmanager" in listed
    dispose_engines()


def test_migration_0009_down_and_up(store_url) -> None:
    """Down: team leads and managers become inactive agents who reach nothing (their teams
    go with the table); up again: the roles are accepted once more. Both backends."""
    from alembic import command
    from sqlalchemy import select

    from pipeline.store import models as m
    from pipeline.store import open_store
    from pipeline.store.db import WRITE_OPTION, alembic_config

    store = open_store(store_url)
    reviews = ReviewStore(store)
    reviews.add_user("lead", "longpassword", "team_lead", teams=["T1"])
    reviews.add_user("mgr", "longpassword", "manager")
    reviews.add_user("rev", "longpassword", "reviewer")
    with store.engine.execution_options(**{WRITE_OPTION: True}).connect() as conn:
        command.downgrade(alembic_config(conn), "0008")
        conn.commit()
        rows = conn.execute(select(m.User.username, m.User.role, m.User.active, m.User.agent_id)).all()  # fmt: skip
        assert sorted(rows) == [("lead", "agent", False, None), ("mgr", "agent", False, None), ("rev", "reviewer", True, None)]  # fmt: skip
        command.upgrade(alembic_config(conn), "head")
        conn.commit()
    assert reviews.add_user("lead2", "longpassword", "team_lead", teams=["T2"]).teams == ("T2",)
