"""The dashboard: KPI tiles against the previous period, trends, item pass rates, agent and
team rankings for the signed-in user's scope, each number a link to its calls in the queue;
its CSV and Excel downloads, and the same figures as JSON for the API."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from pipeline.app import i18n
from pipeline.app.deps import Reviews, gate, language_of, render
from pipeline.app.i18n import gettext as _
from pipeline.app.permissions import CAN_SEE_DASHBOARD, scope_of
from pipeline.app.svg import Point, chart
from pipeline.reports import dashboard as export
from pipeline.store.dashboard import DASHBOARD_FIELDS, Dashboard, Kpis, dashboard_filter, drill_down
from pipeline.store.review import UserInfo

router = APIRouter(tags=["dashboard"])
Viewer = Annotated[UserInfo, gate(CAN_SEE_DASHBOARD, "see the dashboard")]
ApiViewer = Annotated[UserInfo, gate(CAN_SEE_DASHBOARD, "see the dashboard", api=True)]
GrainParam = Annotated[Literal["day", "week"], Query()]


def _load(request: Request, user: UserInfo, reviews: Reviews, grain: str) -> Dashboard:
    params = {k: v for k, v in request.query_params.items() if v != "" and k in DASHBOARD_FIELDS}
    try:
        f = dashboard_filter(params)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise HTTPException(400, f"bad filter {'.'.join(map(str, err['loc']))}: {err['msg']}") from None  # fmt: skip
    return reviews.dashboard(scope_of(user), f, grain)  # type: ignore[arg-type]


def queue_url(d: Dashboard, **extra: Any) -> str:
    return "/?" + urlencode(drill_down(d.filters, **extra))


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _change(now: float | None, before: float | None, kind: str) -> str | None:
    """The change against the previous period in the tile's unit (None: nothing to compare)."""
    if now is None or before is None:
        return None
    diff = now - before
    if kind == "rate":
        return f"{100 * diff:+.1f} pp"
    if kind == "score":
        return f"{diff:+.1f}"
    return f"{int(diff):+d}"


def tiles(d: Dashboard) -> list[dict[str, Any]]:
    """The KPI tiles: figure, the number of calls behind it (the link's count), its queue."""
    k, p = d.kpis, d.previous_kpis or Kpis()
    has_before = d.previous_kpis is not None and d.previous_kpis.calls > 0
    rows = [
        ("calls", _("Calls scored"), f"{k.calls:,}", k.calls, p.calls, "count", {}),
        (
            "mean_score",
            _("Mean score"),
            "–" if k.mean_score_pct is None else f"{k.mean_score_pct:.1f}",
            k.calls,
            None,
            "score",
            {},
        ),  # fmt: skip
        (
            "auto_fail",
            _("Auto-fail rate"),
            _pct(k.auto_fail_rate),
            k.auto_fail,
            None,
            "rate",
            {"auto_fail": True},
        ),  # fmt: skip
        (
            "high_risk",
            _("High-risk rate"),
            _pct(k.high_risk_rate),
            k.high_risk,
            None,
            "rate",
            {"risk_level": "high"},
        ),  # fmt: skip
        (
            "reviewed",
            _("Reviewed share"),
            _pct(k.reviewed_share),
            k.reviewed,
            None,
            "rate",
            {"review_status": "reviewed"},
        ),  # fmt: skip
        (
            "overturn",
            _("Overturn rate"),
            _pct(k.overturn_rate),
            k.reviewed,
            None,
            "rate",
            {"review_status": "reviewed"},
        ),  # fmt: skip
        (
            "disputed",
            _("Open disputes"),
            f"{k.disputed:,}",
            k.disputed,
            p.disputed,
            "count",
            {"review_status": "disputed"},
        ),  # fmt: skip
    ]
    now_before = {
        "mean_score": (k.mean_score_pct, p.mean_score_pct),
        "auto_fail": (k.auto_fail_rate, p.auto_fail_rate),
        "high_risk": (k.high_risk_rate, p.high_risk_rate),
        "reviewed": (k.reviewed_share, p.reviewed_share),
        "overturn": (k.overturn_rate, p.overturn_rate),
    }
    out = []
    for key, label, value, count, before, kind, extra in rows:
        now, prev = now_before.get(key, (count, before))
        out.append(
            {
                "key": key,
                "label": label,
                "value": value,
                "count": count,
                # a zero links nowhere: its queue may hold other calls (a filtered-out level)
                "href": queue_url(d, **extra) if count else None,
                "change": _change(now, prev, kind) if has_before else None,
            }
        )
    # the overturn rate is of items: say so, and open the reviewed calls that have one
    over = out[[t["key"] for t in out].index("overturn")]
    over["sub"] = _("%(over)s of %(items)s reviewed items overturned, in") % {"over": f"{k.overturned_items:,}", "items": f"{k.reviewed_items:,}"}  # fmt: skip
    over["sub_count"] = k.overturned_calls
    over["sub_href"] = queue_url(d, review_status="reviewed", overturned=True) if k.overturned_calls else None  # fmt: skip
    return out


def charts(d: Dashboard) -> dict[str, Any]:
    """The trend charts (mean score, high-risk rate), each point a link to its calls."""
    score, risk = [], []
    for t in d.trend:
        href = queue_url(d, date_from=t.start, date_to=t.end)
        when = t.start if t.start == t.end else f"{t.start} – {t.end}"
        n = _("%(n)d calls") % {"n": t.calls}
        score.append(Point(t.start, t.mean_score_pct, href, f"{when}: {_('Mean score')} {t.mean_score_pct or 0:.1f} ({n})", t.calls))  # fmt: skip
        risk.append(Point(t.start, 100 * (t.high_risk_rate or 0), href, f"{when}: {_('High-risk rate')} {_pct(t.high_risk_rate)} ({n})", t.calls))  # fmt: skip
    top_risk = max((p.value or 0 for p in risk), default=0)
    return {
        "score": chart(score, 100, "", "chart-score"),
        "risk": chart(risk, max(10.0, top_risk), "%", "chart-risk", bars=True),
    }


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
def dashboard_page(
    request: Request, user: Viewer, reviews: Reviews, grain: GrainParam = "day"
) -> HTMLResponse:
    d = _load(request, user, reviews, grain)
    i18n.activate(language_of(request, user))  # the tiles' and charts' words, as render's
    query = urlencode({**drill_down(d.filters), "grain": grain})
    return render(
        request,
        "dashboard.html",
        user,
        d=d,
        f=d.filters,
        tiles=tiles(d),
        charts=charts(d),
        queue_url=lambda **extra: queue_url(d, **extra),
        facets=reviews.facets(scope_of(user)),
        query=query,
        tables=export.TABLES,
    )


@router.get("/dashboard/export.csv", include_in_schema=False)
def dashboard_csv(
    request: Request,
    user: Viewer,
    reviews: Reviews,
    table: Annotated[Literal["kpis", "trend", "items", "agents", "teams"], Query()] = "kpis",
    grain: GrainParam = "day",
) -> Response:
    d = _load(request, user, reviews, grain)
    return Response(
        export.to_csv(d, table),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="dashboard-{table}.csv"'},
    )


@router.get("/dashboard/export.xlsx", include_in_schema=False)
def dashboard_xlsx(
    request: Request, user: Viewer, reviews: Reviews, grain: GrainParam = "day"
) -> Response:
    d = _load(request, user, reviews, grain)
    return Response(
        export.to_xlsx(d),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": 'attachment; filename="dashboard.xlsx"'},
    )


@router.get("/api/dashboard", response_model=Dashboard)
def dashboard_api(
    request: Request, user: ApiViewer, reviews: Reviews, grain: GrainParam = "day"
) -> Dashboard:
    """The dashboard's figures for the token's scope (query: the queue's dashboard filters:
    date_from, date_to, team, agent_id, rubric_id, rubric_version, queue, language,
    risk_level)."""
    return _load(request, user, reviews, grain)
