"""Search across calls by what was said (the current transcript of each scored call).

Chinese has no spaces, so words are not whitespace-delimited: every run of CJK characters is
indexed as its overlapping character bigrams plus its last character (the CJK analysis of
Lucene), other text as lower-cased words. A query becomes, per CJK run, the phrase of its
bigrams (adjacent bigrams of one run = exactly that substring, of any length), a single
character a prefix term; words and numbers match by prefix; all parts must occur. On SQLite the terms go into an FTS5 table
(``search_fts``, external content on ``search_docs``); on PostgreSQL the text is matched
with ``ILIKE`` over a ``pg_trgm`` GIN index. Searches only ever return calls the viewer may
see (agents: their own; an agent's calls are usually few, so they are matched by scanning
their text rather than through the index).

The index follows the store lazily: before a search, calls whose current result is newer
than the newest indexed one are (re)indexed (:meth:`SearchIndex.sync`, cheap when nothing
changed: two index lookups). :meth:`SearchIndex.rebuild` redoes it all.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from sqlalchemy import delete, func, insert, select, text

from pipeline.store import models as m
from pipeline.store.scope import Scope
from pipeline.store.store import Store
from pipeline.text import CJK_CHARS as _CJK
from pipeline.text import is_cjk as _is_cjk

TOKEN = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+")
MAX_QUERY = 100  # characters
CONTEXT = 24  # characters either side of a hit
SYNC_BATCH = 500
SCAN_LIMIT = 20_000  # an agent with at most this many calls is searched by scanning them
# the call's summary and contact reason (Result.summary, pipeline.llm) follow its transcript
# in the indexed text after this line start; a hit there points at no utterance
SUMMARY_MARK = "\n§ "


def terms(value: str) -> list[str]:
    """Index terms of ``value``: CJK bigrams (+ each run's last character) and words."""
    out: list[str] = []
    for match in TOKEN.finditer(value.lower()):
        tok = match.group()
        if _is_cjk(tok[0]):
            out.extend(tok[i : i + 2] for i in range(len(tok) - 1))
            out.append(tok[-1])
        else:
            out.append(tok)
    return out


def fts_query(query: str) -> str | None:
    """The FTS5 MATCH expression of a user query (None when it has no searchable term)."""
    parts: list[str] = []
    for match in TOKEN.finditer(query.lower()):
        tok = match.group()
        if _is_cjk(tok[0]) and len(tok) == 1:
            parts.append(f'"{tok}"*')
        elif _is_cjk(tok[0]):
            parts.append('"' + " ".join(tok[i : i + 2] for i in range(len(tok) - 1)) + '"')
        else:
            parts.append(f'"{tok}"*')  # words and numbers by prefix: refund(s), order no.
    return " AND ".join(parts) or None


class SearchHit(BaseModel):
    call_id: str
    agent_id: str | None
    agent_name: str | None
    team: str | None
    started_at: str | None
    utterance: int | None  # index of the utterance with the first hit
    before: str
    hit: str
    after: str


class SearchPage(BaseModel):
    query: str
    hits: list[SearchHit]
    page: int
    per_page: int
    has_next: bool


def context_of(doc: str, query: str) -> tuple[int | None, str, str, str]:
    """(utterance index, text before, the hit, text after) of the first hit of ``query``
    (its first term when the whole query does not occur as typed)."""
    low = doc.lower()
    summary_at = doc.find(SUMMARY_MARK)
    needles = [query.strip().lower()] + [t.group() for t in TOKEN.finditer(query.lower())]
    for needle in needles:
        at = low.find(needle) if needle else -1
        if at >= 0:
            line_start = doc.rfind("\n", 0, at) + 1
            line_end = doc.find("\n", at)
            line_end = len(doc) if line_end < 0 else line_end
            end = at + len(needle)
            before = doc[max(line_start, at - CONTEXT) : at]
            after = doc[end : min(line_end, end + CONTEXT)]
            in_summary = 0 <= summary_at < at
            return (None if in_summary else doc.count("\n", 0, at)), before, doc[at:end], after
    return None, "", "", doc[: CONTEXT * 2]


class SearchIndex:
    """The cross-call search index of one store."""

    def __init__(self, store: Store):
        self.store = store
        self.sqlite = store.engine.dialect.name == "sqlite"

    # ------------------------------------------------------------------ indexing

    def sync(self) -> int:
        """Index calls whose current result is newer than the index; returns how many."""
        done = 0
        while True:
            with self.store.session("cannot read the search index") as s:
                mark = s.scalar(select(func.max(m.SearchDoc.result_id))) or 0
                rows = s.execute(
                    select(m.Call.id, m.Call.current_result_id, m.Result.transcript_id)
                    .join(m.Result, m.Result.id == m.Call.current_result_id)
                    .where(m.Call.current_result_id > mark)
                    .order_by(m.Call.current_result_id)
                    .limit(SYNC_BATCH)
                ).all()
            if not rows:
                return done
            self._index(rows)
            done += len(rows)

    def rebuild(self) -> int:
        with self.store.transaction("cannot clear the search index") as s:
            s.execute(delete(m.SearchDoc))
            if self.sqlite:
                s.execute(text("INSERT INTO search_fts(search_fts) VALUES ('delete-all')"))
        return self.sync()

    def _index(self, rows: list[Any]) -> None:
        transcript_of = {t: (call_pk, rid) for call_pk, rid, t in rows}
        U = m.Utterance  # noqa: N806
        with self.store.session("cannot read transcripts") as s:
            found = s.execute(
                select(U.transcript_id, U.text)
                .where(U.transcript_id.in_(list(transcript_of)))
                .order_by(U.transcript_id, U.idx)
            ).all()
            summaries = dict(
                s.execute(
                    select(m.Result.id, m.Result.document["summary"]).where(
                        m.Result.id.in_([rid for _, rid in transcript_of.values()])
                    )
                ).all()
            )
        texts: dict[int, list[str]] = {t: [] for t in transcript_of}
        for tid, said in found:
            texts[tid].append(" ".join(said.split()))
        docs = []
        for tid, lines in texts.items():
            call_pk, rid = transcript_of[tid]
            doc = "\n".join(lines)
            summary = summaries.get(rid)
            if isinstance(summary, dict):
                said = " ".join(str(summary.get(k) or "") for k in ("contact_reason", "summary"))
                doc += SUMMARY_MARK + " ".join(said.split())
            docs.append({"call_pk": call_pk, "result_id": rid, "text": doc})
        self.write(docs)

    def write(self, docs: list[dict[str, Any]]) -> None:
        """Replace the index rows of these calls (``call_pk``, ``result_id``, ``text``)."""
        for doc in docs:
            doc["terms"] = " ".join(terms(doc["text"]))
        pks = [d["call_pk"] for d in docs]
        with self.store.transaction("cannot update the search index") as s:
            if self.sqlite:
                old = s.execute(
                    select(m.SearchDoc.call_pk, m.SearchDoc.terms).where(
                        m.SearchDoc.call_pk.in_(pks)
                    )  # fmt: skip
                ).all()
                if old:
                    s.execute(
                        text(
                            "INSERT INTO search_fts(search_fts, rowid, terms) VALUES ('delete', :pk, :terms)"
                        ),  # fmt: skip
                        [{"pk": pk, "terms": t} for pk, t in old],
                    )
            s.execute(delete(m.SearchDoc).where(m.SearchDoc.call_pk.in_(pks)))
            if docs:
                s.execute(insert(m.SearchDoc), docs)
                if self.sqlite:
                    s.execute(
                        text("INSERT INTO search_fts(rowid, terms) VALUES (:call_pk, :terms)"),
                        [{"call_pk": d["call_pk"], "terms": d["terms"]} for d in docs],
                    )

    # ------------------------------------------------------------------ searching

    def _few_calls(self, scope: Scope) -> bool:
        """True when an agent's own calls are few enough to match their text directly, which
        beats walking the whole index's hits for the few that are theirs."""
        mine = select(m.Call.id).where(scope.calls())
        with self.store.session("cannot count calls") as s:
            n = s.scalar(select(func.count()).select_from(mine.limit(SCAN_LIMIT + 1).subquery()))
        return n <= SCAN_LIMIT

    def search(self, query: str, scope: Scope, *, page: int = 1, per_page: int = 50) -> SearchPage:
        """Calls in ``scope`` (agent isolation) whose transcript contains ``query``, newest
        indexed first."""
        query = " ".join(query.split())[:MAX_QUERY]
        empty = SearchPage(query=query, hits=[], page=page, per_page=per_page, has_next=False)
        match = fts_query(query)
        if match is None:
            return empty
        self.sync()
        C, D = m.Call, m.SearchDoc  # noqa: N806
        offset = (page - 1) * per_page
        scan = not scope.all_calls and self._few_calls(scope)
        if self.sqlite and not scan:
            fts = (
                text("SELECT rowid AS call_pk FROM search_fts WHERE search_fts MATCH :q")
                .columns(call_pk=D.call_pk.type)
                .subquery("hits")
            )
            q = (
                select(C, D.text)
                .join(fts, fts.c.call_pk == C.id)
                .join(D, D.call_pk == C.id)
                .order_by(fts.c.call_pk.desc())
            )
            params = {"q": match}
        else:  # PostgreSQL (pg_trgm index), or one agent's few calls: match the text itself
            q = select(C, D.text).join(D, D.call_pk == C.id).order_by(D.call_pk.desc())
            for tok in TOKEN.finditer(query.lower()):
                q = q.where(D.text.ilike(f"%{tok.group()}%"))  # tokens: letters/digits only
            params = {}
        q = q.where(C.current_result_id.is_not(None), C.status == "scored")
        if (mine := scope.calls()) is not None:
            q = q.where(mine)
        q = q.limit(per_page + 1).offset(offset)
        with self.store.session("cannot search calls") as s:
            found = s.execute(q, params).all()
        hits = []
        for call, doc in found[:per_page]:
            idx, before, hit, after = context_of(doc, query)
            hits.append(
                m.copy_call(call, SearchHit, utterance=idx, before=before, hit=hit, after=after)
            )
        return SearchPage(
            query=query, hits=hits, page=page, per_page=per_page, has_next=len(found) > per_page
        )
