"""One call: its page (transcript, evidence, timeline, audit, disputes), its redacted
recording, and the reviewer's overrides and confirmation. Agents reach only their own calls
(others answer 404, as if absent)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote, urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from pipeline.app import security, timeline
from pipeline.app.audio import AudioUnavailable, playable
from pipeline.app.deps import (
    QUEUE_FIELDS,
    DbId,
    Reviews,
    User,
    back_to_call,
    check_csrf,
    gate,
    keep_query,
    notify,
    queue_filter,
    render,
    reviews_of,
    safe_next,
)
from pipeline.app.i18n import gettext as _
from pipeline.app.permissions import CAN_REVIEW, CAN_SEE_PERSONAL_DATA, scope_of
from pipeline.redact.audio_mask import redaction_intervals
from pipeline.schema import Evidence, Transcript
from pipeline.store.review import FinalScore, UserInfo

router = APIRouter(include_in_schema=False, tags=["calls"])
EVIDENCE_FIELDS: dict[str, None] = dict.fromkeys(Evidence.model_fields)
Overrider = Annotated[UserInfo, gate(CAN_REVIEW, "override items")]
Confirmer = Annotated[UserInfo, gate(CAN_REVIEW, "confirm reviews")]


@router.get("/calls/{call_id:id}", response_class=HTMLResponse)
def call_page(request: Request, call_id: str, user: User) -> HTMLResponse:
    return call_view(request, user, call_id)


@router.get("/calls/{call_id:id}/audio")
def call_audio(request: Request, call_id: str, user: User) -> Response:
    return serve_audio(request, user, call_id)


@router.post("/calls/{call_id:id}/items/{item_result_id}/override")
async def override(
    request: Request,
    call_id: str,
    item_result_id: DbId,
    user: Overrider,
    reviews: Reviews,
    verdict: Annotated[str, Form()] = "",
    comment: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
    _csrf: None = Depends(check_csrf),
) -> Response:
    if verdict not in ("pass", "fail"):
        raise HTTPException(400, _("an override sets a verdict: pass or fail"))
    reviews.override(scope_of(user), call_id, item_result_id, verdict == "pass", comment)
    notify(request)
    return back_to_call(call_id, keep_query(next) + f"#item-{item_result_id}")


@router.post("/calls/{call_id:id}/confirm")
async def confirm(
    request: Request,
    call_id: str,
    user: Confirmer,
    reviews: Reviews,
    comment: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
    _csrf: None = Depends(check_csrf),
) -> Response:
    reviews.confirm(scope_of(user), call_id, comment)
    notify(request)
    if next.startswith("/calls/"):  # "confirm all and next"
        return RedirectResponse(safe_next(next), status_code=303)
    return back_to_call(call_id, keep_query(next))


# --------------------------------------------------------------------------- the page


def call_view(
    request: Request, user: UserInfo, call_id: str, unredacted: Transcript | None = None
) -> HTMLResponse:
    """The call page; ``unredacted`` (reviewers/admins, see :mod:`.privacy`) replaces the
    redacted transcript's text with what was said."""
    reviews = reviews_of(request)
    scope = scope_of(user)
    info = reviews.call_info(scope, call_id)  # NotFound for other agents' calls
    final = reviews.final_score(scope, call_id)
    for item in final.items:  # stored evidence omits unset fields; the template reads them all
        item.evidence = [{**EVIDENCE_FIELDS, **e} for e in item.evidence]
    transcript = reviews.store.get_transcript(call_id)
    result = reviews.store.get_result(call_id)
    risk = result.risk if result else None
    disputes = reviews.disputes(scope, call_id)
    open_items = {d.item_result_id for d in disputes if d.status == "open"}
    may_see = user.role in CAN_SEE_PERSONAL_DATA
    # queue context (?q=<filters>&pos=<row>) for n/p and "confirm all and next"
    context = request.query_params.get("q", "")[:2000]
    position = _bounded_int(request.query_params.get("pos"))
    f = queue_filter(
        {k: v for k, v in parse_qsl(context) if v and k in QUEUE_FIELDS},
        reviews.prefs(user.id).per_page,
    )
    prev_id, next_id = reviews.neighbours(scope, f, call_id, position)

    def link(target: str | None, pos: int | None) -> str | None:
        if target is None:
            return None
        query = urlencode({"q": context, "pos": max(0, pos or 0)})
        return f"/calls/{security.url_id(target)}?{query}"

    here = "?" + urlencode({"q": context, "pos": position or 0})
    utterances = transcript.utterances if transcript else []
    draft = reviews.take_draft(request.session.pop("draft", None), user.id)  # typed before sign-in
    if draft and not _same_call_path(draft.get("path", ""), call_id):
        draft = None
    return render(
        request,
        "call.html",
        user,
        info=info,
        call_url=f"/calls/{security.url_id(info.call_id)}",
        final=final,
        risk=risk,
        summary=result.summary if result else None,
        utterances=transcript_view(unredacted or transcript, final, risk),
        timeline=timeline.build(
            utterances,
            final.items,
            risk,
            info.duration or (transcript.duration if transcript else None),
            info.source,
            request.app.state.audio_cache,
        ),
        has_audio=timeline.is_recording(info.source),
        audit=reviews.audit(scope, call_id),
        disputes=disputes,
        open_items=open_items,
        redacted_audio=bool(redaction_intervals(transcript)),
        revealed=unredacted is not None,
        can_reveal=may_see and reviews.store.has_unredacted(call_id),
        reveals=reviews.store.reveals(call_id) if may_see else [],
        prev_url=link(prev_id, (position or 0) - 1),
        next_url=link(next_id, (position or 0) + 1),
        here=here,
        draft=draft,
    )


def serve_audio(request: Request, user: UserInfo, call_id: str) -> Response:
    """The call's recording with HTTP Range support (FileResponse answers 206 to a Range)."""
    reviews = reviews_of(request)
    info = reviews.call_info(scope_of(user), call_id)  # NotFound for calls the user may not see
    if not info.source:
        raise HTTPException(404, "this call has no recording")
    # every role hears the redacted recording (issue 17); the original is never served
    spans = redaction_intervals(reviews.store.get_transcript(call_id))
    try:
        path, media_type = playable(info.source, request.app.state.audio_cache, spans)
    except AudioUnavailable as exc:
        raise HTTPException(404, str(exc)) from None
    return FileResponse(
        path,
        media_type=media_type,
        headers={"Cache-Control": "private, no-store", "Accept-Ranges": "bytes"},
        content_disposition_type="inline",
    )


def transcript_view(transcript, final: FinalScore, risk) -> list[dict[str, Any]]:
    """Utterances with the items and risk findings that cite them (for highlighting)."""
    cited: dict[int, list[dict[str, Any]]] = {}
    marks: dict[int, list[str]] = {}
    for item in final.items:
        for ev in item.evidence:
            idx = ev.get("utterance")
            if idx is None:
                continue
            verdict = {True: "pass", False: "fail"}.get(item.passed, "review")
            cited.setdefault(idx, []).append({"id": item.id, "verdict": verdict})
            if ev.get("text"):
                marks.setdefault(idx, []).append(ev["text"])
    if risk is not None:
        for ev in risk.evidence:
            if ev.utterance is not None:
                cited.setdefault(ev.utterance, []).append({"id": "risk", "verdict": "risk"})
                if ev.text:
                    marks.setdefault(ev.utterance, []).append(ev.text)
    rows = []
    for i, u in enumerate(transcript.utterances if transcript else []):
        rows.append(
            {
                "idx": i,
                "speaker": u.speaker,
                "start": u.start,
                "end": u.end,
                "confidence": u.confidence,
                "segments": _segments(u.text, marks.get(i, [])),
                "cited": cited.get(i, []),
            }
        )
    return rows


def _segments(text: str, marks: list[str]) -> list[tuple[str, bool]]:
    """Split ``text`` into (piece, highlighted) around the first occurrence of each mark."""
    spans: list[tuple[int, int]] = []
    for mark in marks:
        if mark and (at := text.find(mark)) >= 0:
            spans.append((at, at + len(mark)))
    spans.sort()
    out, pos = [], 0
    for start, end in spans:
        if start < pos:
            continue
        if start > pos:
            out.append((text[pos:start], False))
        out.append((text[start:end], True))
        pos = end
    if pos < len(text):
        out.append((text[pos:], False))
    return out or [(text, False)]


def _same_call_path(path: str, call_id: str) -> bool:
    return path == f"/calls/{security.url_id(call_id)}" or unquote(path) == f"/calls/{call_id}"


def _bounded_int(value: str | None, top: int = 10_000_000) -> int | None:
    """A small non-negative integer from a query string, else None (never an error)."""
    if value is None or not value.isdigit() or len(value) > 9:
        return None
    return min(int(value), top)
