"""Numbers that are personal because of the question they answer.

When the agent's turn asks for an account, card, ID, phone, PIN, password, verification
code, date of birth or address (a *request*: one of the set's ``dialogue.requests``
patterns plus a cue such as a question mark, and no "never share your PIN" warning), the
customer's following turns are its *answer*, and their numerals (or, for ``scope:
answer``, their whole content) are personal data whatever their length.

The answer may run over several customer turns (``max_answers``, ``max_seconds``) and
through the agent's backchannels ("mm-hm", "嗯", "take your time"). It ends at an agent
turn with content once the customer has given digits (unless that turn reads them back,
which is masked too) or that asks another question, at a customer turn with content but
no numerals once digits were given, or at a new request.

The same words in any turn make the numerals right after them personal too ("my account
number is 6338 1047", "卡号后四位是三三零一"): :func:`declared_numbers`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.redact.digits import normalize
from pipeline.redact.recognizers import Dialogue, RecognizerSet, RequestRule
from pipeline.schema import Transcript, Utterance
from pipeline.scripts_check.match import Match, match
from pipeline.text import NormText, normalise

_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)
# what ends the clause the words are in; a question mark does not: on mono calls the
# question and its answer can be one utterance
_CLAUSE_END = re.compile(r"[。！；;!]|[，,]\s*(?![0-9零〇一二三四五六七八九幺两洞])(?=\S)")
_SENTENCE_END = re.compile(r"[?？。!！]|\.(?=\s|$)")
_QUESTION = re.compile(r"[?？]|吗|为什么|\bwhy\b|\bwhat for\b", re.I)


@dataclass
class Request:
    """One request in the call: where it was made and what it asked for."""

    utterance: int
    speaker: str
    end: float
    term: str
    rule: RequestRule
    rset: RecognizerSet
    digits: str = ""  # the answer's digits so far
    answers: int = 0


@dataclass
class AnswerContext:
    """Why an utterance's numerals (or content) are personal: the request it answers."""

    request: Request
    readback: bool = False  # the agent reading the answer back

    @property
    def reason(self) -> str:
        what = "reads back the answer to" if self.readback else "answers"
        return (
            f"{what} the request in utterance {self.request.utterance} "
            f"('{self.request.term}': {self.request.rule.name})"
        )


@dataclass
class _Compiled:
    dialogue: Dialogue
    cues: list[re.Pattern[str]]
    not_request: list[re.Pattern[str]]
    requests: list[tuple[RequestRule, list[re.Pattern[str]]]]
    values: dict[str, list[re.Pattern[str]]]  # rule name -> its value_patterns
    phrases: list[tuple[RequestRule, str, NormText]]
    names: list[re.Pattern[str]]
    fillers: re.Pattern[str] | None
    keep_before: re.Pattern[str] | None
    keep_after: re.Pattern[str] | None
    other_numbers: list[re.Pattern[str]]


_COMPILED: dict[int, _Compiled] = {}


def compiled(rset: RecognizerSet) -> _Compiled:
    """The set's dialogue regexes, compiled once per loaded set (case-insensitive)."""
    dialogue = rset.dialogue
    assert dialogue is not None
    hit = _COMPILED.get(id(dialogue))
    if hit is not None and hit.dialogue is dialogue:
        return hit

    def rx(values: list[str]) -> list[re.Pattern[str]]:
        return [re.compile(v, re.I) for v in values]

    fillers = sorted(dialogue.fillers, key=len, reverse=True)
    # ASCII fillers are whole words ("um", not the "um" of "number")
    alts = "|".join(
        rf"(?<![a-z']){re.escape(f)}(?![a-z'])" if f.isascii() else re.escape(f) for f in fillers
    )
    hit = _Compiled(
        dialogue=dialogue,
        cues=rx(dialogue.request_cues),
        not_request=rx(dialogue.not_request),
        requests=[(r, rx(r.patterns)) for r in dialogue.requests],
        values={r.name: rx(r.value_patterns) for r in dialogue.requests},
        phrases=[(r, p, normalise(p, rset.language)) for r in dialogue.requests for p in r.phrases],
        names=[re.compile(p) for p in dialogue.name_patterns],  # case matters: "Lee", not "lee"
        fillers=re.compile(alts, re.I) if fillers else None,
        keep_before=re.compile(dialogue.keep_before, re.I) if dialogue.keep_before else None,
        keep_after=re.compile(dialogue.keep_after, re.I) if dialogue.keep_after else None,
        other_numbers=rx(dialogue.other_numbers),
    )
    _COMPILED[id(dialogue)] = hit
    return hit


@dataclass(frozen=True)
class Hit:
    """Where a request's words are in a turn: a pattern's match or a phrase said through
    ASR noise (``similarity`` < 1 then, and ``how`` says what differs)."""

    rule: RequestRule
    start: int
    end: int
    term: str
    similarity: float = 1.0
    how: str = ""

    @property
    def label(self) -> str:
        """The words as said, and the phrase they were taken for when not exact."""
        if self.similarity >= 1.0:
            return self.term
        return f"{self.term} ~ {self.how} {self.similarity:.2f}"


def _phrase_ok(m: Match, units: int, dialogue: Dialogue) -> bool:
    """The tolerance of ``phrase_min_similarity`` (see :class:`Dialogue`)."""
    if any(op == "negation" for op, _, _ in m.ops):
        return False
    for op, p, said in m.ops:
        # a join is a join ("zipcode", "numb her"), not a word that ends like the phrase
        # ("number" is no "id number")
        if op in ("merged", "split") and abs(len(p) - len(said)) > 2:
            return False
    lost = [p for op, p, _ in m.ops if op in ("changed", "missing")]
    loose = {w.lower() for w in dialogue.phrase_loose_words}
    if len(lost) > 1 or any(p not in loose for p in lost):
        return False
    return m.similarity + len(lost) / units >= dialogue.phrase_min_similarity


_HITS: dict[tuple[int, str], list[Hit]] = {}
_HITS_MAX = 4096


def request_hits(text: str, rset: RecognizerSet) -> list[Hit]:
    """Every request's words in ``text`` by the set's patterns, and, in a turn that asks
    something (a cue, no warning), the phrases of rules none of whose patterns matched,
    through ASR noise; in text order (cached per text: a
    turn is asked both whether it is a request and what follows the words)."""
    c = compiled(rset)
    key = (id(c), text)
    if (cached := _HITS.get(key)) is not None:
        return cached
    if len(_HITS) >= _HITS_MAX:
        _HITS.clear()
    _HITS[key] = hits = _request_hits(text, rset, c)
    return hits


def _request_hits(text: str, rset: RecognizerSet, c: _Compiled) -> list[Hit]:
    hits = [
        Hit(rule, m.start(), m.end(), m.group())
        for rule, patterns in c.requests
        for p in patterns
        for m in p.finditer(text)
    ]
    if not any(p.search(text) for p in c.cues) or any(p.search(text) for p in c.not_request):
        return hits  # phrases through noise only where the turn asks something
    found = {h.rule.name for h in hits}
    said: NormText | None = None
    for rule, phrase, norm in c.phrases:
        if rule.name in found or not norm.units:
            continue
        said = said or normalise(text, rset.language)
        floor = c.dialogue.phrase_min_similarity - 1 / len(norm.units)
        m = match(norm, said, rset.language, floor)
        if m is None or m.start >= m.end or not _phrase_ok(m, len(norm.units), c.dialogue):
            continue
        start, end = said.original_span(m.start, m.end)
        if any(h.start < end and start < h.end for h in hits):
            continue  # the words another request's pattern matched ("password" ~ "passcode")
        hits.append(Hit(rule, start, end, text[start:end], m.similarity, phrase))
        found.add(rule.name)
    return sorted(hits, key=lambda h: h.start)


def match_request(
    text: str, sets: list[RecognizerSet]
) -> tuple[RequestRule, str, RecognizerSet] | None:
    """The request made in ``text`` (rule, matched words, set), or None.

    Several requests may be made ("your name and ID number"): the last one in the text wins.
    """
    best: tuple[int, RequestRule, str, RecognizerSet] | None = None
    for rset in sets:
        if rset.dialogue is None:
            continue
        c = compiled(rset)
        if not any(p.search(text) for p in c.cues):
            continue
        if any(p.search(text) for p in c.not_request):
            continue
        for h in request_hits(text, rset):
            if best is None or h.start >= best[0]:
                best = (h.start, h.rule, h.label, rset)
    return None if best is None else (best[1], best[2], best[3])


def content(text: str, *rsets: RecognizerSet) -> str:
    """``text`` without the fillers of any of ``rsets`` and punctuation ('' for "mm-hm",
    "嗯，好的"; several sets: an answer in another language than the request)."""
    rest = text
    for rset in rsets:
        c = compiled(rset)
        rest = c.fillers.sub(" ", rest) if c.fillers else rest
    return _PUNCT.sub("", rest)


def answer_span(text: str, *rsets: RecognizerSet) -> tuple[int, int] | None:
    """Character span of the content of an answer turn (leading fillers of any of
    ``rsets``, trailing punctuation off); None when there is none or the turn is a
    question back."""
    if not content(text, *rsets) or _QUESTION.search(text):
        return None
    fillers = [f for f in (compiled(r).fillers for r in rsets) if f is not None]
    start, end = 0, len(text)
    while True:
        m = _PUNCT.match(text, start) or next(
            (hit for f in fillers if (hit := f.match(text, start)) and hit.end() > start), None
        )
        if m is None or m.end() == start:
            break
        start = m.end()
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return (start, end) if end > start else None


_HAN = re.compile(r"[\u3400-\u9fff]")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


def answer_names(text: str, *rsets: RecognizerSet) -> list[tuple[int, int]]:
    """Character spans of the names in an answer to a request for a name: what the sets'
    ``name_patterns`` find in its content, else the whole content when it is short (at
    most ``name_answer_max`` Han characters and Latin words: "robert smith", "张伟")."""
    span = answer_span(text, *rsets)
    if span is None:
        return []
    body = text[span[0] : span[1]]
    found: list[tuple[int, int]] = []
    for rset in rsets:
        for p in compiled(rset).names:
            for m in p.finditer(body):
                s, e = m.span("pii") if "pii" in p.groupindex else m.span()
                if e > s and not any(s < b and a < e for a, b in found):
                    found.append((s, e))
    if found:
        # a name is spelt by saying it again (刘，刘德华的刘; "Lee, L-E-E... Lee"): every
        # other place the name found is said in the answer goes too
        for name in {body[s:e] for s, e in found}:
            for m in re.finditer(re.escape(name), body):
                if not any(m.start() < b and a < m.end() for a, b in found):
                    found.append(m.span())
        return sorted((span[0] + s, span[0] + e) for s, e in found)
    units = len(_HAN.findall(body)) + len(_WORD.findall(body))
    limit = max(r.dialogue.name_answer_max for r in rsets if r.dialogue is not None)
    return [span] if units <= limit else []


def is_kept_number(text: str, start: int, end: int, *rsets: RecognizerSet) -> bool:
    """A numeral that is an amount, count or time (``$5``, ``3 times``, ``两件``) by the
    words of any of ``rsets``."""
    for rset in rsets:
        c = compiled(rset)
        if c.keep_before and c.keep_before.search(text[max(0, start - 8) : start]):
            return True
        if c.keep_after and c.keep_after.match(text[end : end + 16]):
            return True
    return False


def _digits(text: str) -> str:
    return "".join(g.digits for run in normalize(text).runs for g in run)


def answer_contexts(
    transcript: Transcript, sets: list[list[RecognizerSet]]
) -> dict[int, AnswerContext]:
    """Utterance index → the request its numerals answer (or read back).

    ``sets[i]`` are the sets that read utterance ``i`` (its own language): a request is
    found by those, and stays open across a switch of language."""
    out: dict[int, AnswerContext] = {}
    open_: Request | None = None
    for i, utt in enumerate(transcript.utterances):
        if utt.speaker != "customer" and (hit := match_request(utt.text, sets[i])):
            rule, term, rset = hit
            open_ = Request(i, utt.speaker, utt.end, term, rule, rset)
            continue
        if open_ is None:
            continue
        dlg = open_.rset.dialogue
        assert dlg is not None
        if utt.start - open_.end > dlg.max_seconds:
            open_ = None
            continue
        readers = [open_.rset, *(s for s in sets[i] if s.dialogue and s is not open_.rset)]
        if _same_side(utt, open_):
            if not content(utt.text, *readers):
                continue  # the agent's "mm-hm": the answer goes on
            said = _digits(utt.text)
            if len(said) >= 3 and open_.digits and (said in open_.digits or open_.digits in said):
                out[i] = AnswerContext(open_, readback=True)
                continue
            if not open_.digits and not said and not _QUESTION.search(utt.text):
                continue  # "To verify your identity." before any answer: still waiting
            open_ = None  # the agent moved on (or asked something else)
            continue
        said = _digits(utt.text)
        if not said and open_.digits and content(utt.text, *readers):
            open_ = None  # the customer has moved on
            continue
        out[i] = AnswerContext(open_)
        open_.digits += said
        open_.answers += 1
        if open_.answers >= dlg.max_answers or (
            open_.rule.scope == "name" and content(utt.text, *readers)
        ):
            open_ = None  # a name is given in one turn: the next one is about something else
    return out


def _same_side(utt: Utterance, request: Request) -> bool:
    return utt.speaker == request.speaker and utt.speaker != "unknown"


@dataclass
class Declared:
    """Numerals that follow a request's words in the same turn."""

    start: int
    end: int
    rule: RequestRule
    term: str
    rset: RecognizerSet

    @property
    def reason(self) -> str:
        return f"numerals right after '{self.term}' ({self.rule.name})"


def declared_numbers(
    text: str, runs: list, sets: list[RecognizerSet], speaker: str = "unknown"
) -> list[Declared]:
    """Numeral runs (``normalize(text).runs``) said right after a request's words.

    "Right after": within ``declared_window`` characters that are not fillers or
    punctuation, in the same clause. When the sentence holding the words is itself a
    request (a cue, no warning) and ends before the numerals ("...account number please?
    6, 3, 3, 8", "请提供一下您的身份证后四位。九九八七": a mono call's question and answer in
    one utterance), the numerals after it count, also for requests with ``declared:
    false``; not in a customer's turn: their own question asks for nothing of theirs
    (生日礼包什么时候到？我三月十二号下的单). Runs that follow closely are taken too; amounts
    and counts are skipped. A rule's ``value_patterns`` (a spoken date of birth) follow
    its words the same way.
    """
    out: list[Declared] = []
    if not runs:
        return out
    for rset in sets:
        if rset.dialogue is None:
            continue
        window = rset.dialogue.declared_window
        keep_words = {w.lower() for w in rset.dialogue.keep_words}
        for h in request_hits(text, rset):
            rule = h.rule
            found: list[Declared] = []
            for run in runs:
                start, end = run[0].start, run[-1].end
                if start < h.end:
                    continue  # before the words, or in them
                if is_kept_number(text, start, end, rset) or (
                    len(run) == 1 and text[start:end].lower() in keep_words
                ):
                    continue  # "后四位", "3 times"
                gap = text[found[-1].end if found else h.end : start]
                asked = None if found or speaker == "customer" else _asked(text, h, gap, rset)
                after = gap[asked:] if asked is not None else gap
                if not (found or asked is not None or rule.declared):
                    break
                if len(content(after, rset)) > (6 if found else window):
                    break  # too far: "6338 and 1047" is close, a new topic is not
                if asked is None and content(gap, rset) and _CLAUSE_END.search(gap):
                    break  # another clause: "信用卡中心，工号一零八六"
                if any(p.search(gap) for p in compiled(rset).other_numbers):
                    break  # another number's words: "信用卡中心公号五六二零三"
                found.append(Declared(start, end, rule, h.label, rset))
            found += _declared_values(text, h, rset, found, window, speaker)
            if found and rule.scope == "answer":  # "March 3rd, 1985": one span
                found.sort(key=lambda d: d.start)
                found = [Declared(found[0].start, found[-1].end, rule, h.label, rset)]
            out += found
    return out


def _declared_values(
    text: str, h: Hit, rset: RecognizerSet, found: list[Declared], window: int, speaker: str
) -> list[Declared]:
    """The first match of the rule's ``value_patterns`` right after the words (as close
    as numerals must be, or after the request's own sentence), not inside ``found``."""
    out: list[Declared] = []
    for p in compiled(rset).values.get(h.rule.name, []):
        m = p.search(text, h.end)
        if m is None or m.end() <= m.start():
            continue
        if any(d.start <= m.start() and m.end() <= d.end for d in found + out):
            continue
        gap = text[h.end : m.start()]
        asked = None if speaker == "customer" else _asked(text, h, gap, rset)
        if asked is None and not h.rule.declared:
            continue
        after = gap[asked:] if asked is not None else gap
        if len(content(after, rset)) > window:
            continue
        if asked is None and content(gap, rset) and _CLAUSE_END.search(gap):
            continue
        out.append(Declared(m.start(), m.end(), h.rule, h.label, rset))
    return out


def _asked(text: str, h: Hit, gap: str, rset: RecognizerSet) -> int | None:
    """Offset in ``gap`` just past the end of the sentence holding hit ``h`` when that
    sentence is a request (a cue and no warning); None otherwise."""
    end = _SENTENCE_END.search(gap)
    if end is None:
        return None
    before = [e.end() for e in _SENTENCE_END.finditer(text, 0, h.start)]
    sentence = text[before[-1] if before else 0 : h.end + end.end()]
    c = compiled(rset)
    if not any(p.search(sentence) for p in c.cues) or any(
        p.search(sentence) for p in c.not_request
    ):
        return None
    return end.end()
