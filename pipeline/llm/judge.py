"""The language model stage: every ``llm`` question of a call (and its summary) in ONE
request, answers checked against the JSON schema, cached by (transcript hash, question hash,
model configuration).

:meth:`Judge.ask` never raises for the model's sake: a missing backend, a refused or
timed-out request or an answer that breaks the schema comes back as an
:class:`~pipeline.llm.answer.LlmAnswer` with ``error`` for each question, and the ``llm``
check sends the item to review with that reason. The batch goes on.

The model only sees what it is given: the redacted transcript the score stage holds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.config import LlmSettings
from pipeline.llm.answer import CallSummary, LlmAnswer
from pipeline.llm.backends import Backend, LlmFailed, make_backend
from pipeline.llm.config import PromptTemplate, llm_config, load_prompt
from pipeline.schema import LlmConfig, Transcript, canonical_sha256

log = logging.getLogger(__name__)

MAX_QUOTES = 3
OUTCOMES = ("resolved", "needs_follow_up")
SUMMARY_KEY = "__summary__"  # the summary's cache key beside the question hashes


class Question(Protocol):
    """What the judge needs of a question (:class:`pipeline.scripts_check.llm_item.LlmCheck`)."""

    question: str
    instructions: str | None

    @property
    def choices(self) -> list[Any]: ...

    def question_sha256(self) -> str: ...


class AnswerCache(Protocol):
    """Where answers are kept (:class:`pipeline.store.Store`)."""

    def llm_answers(
        self, transcript_sha256: str, question_sha256s: list[str], model: str
    ) -> dict[str, dict[str, Any]]: ...

    def put_llm_answers(
        self, transcript_sha256: str, answers: dict[str, dict[str, Any]], model: str
    ) -> None: ...


@dataclass
class Asked:
    """What one call's asking gave: answers by question hash, the summary, what it cost."""

    answers: dict[str, LlmAnswer] = field(default_factory=dict)
    summary: CallSummary | None = None
    requests: int = 0  # 0: everything came from the cache
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None


def _key(i: int, q: Question) -> str:
    """The question's key in the answer: its number and its words, so a small model reads
    the question again (the grammar writes the key) right before it answers."""
    return f"Q{i + 1} {' '.join(q.question.split())[:120]}"


def answer_schema(questions: list[Question], summary: bool) -> dict[str, Any]:
    """The JSON schema of one call's answer: one object per question (quotes, justification,
    a choice from its answer choices), and the summary fields when asked."""
    props: dict[str, Any] = {}
    for i, q in enumerate(questions):
        props[_key(i, q)] = {
            "type": "object",
            "properties": {
                "quotes": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_QUOTES},
                "justification": {"type": "string"},
                "choice": {"type": "string", "enum": [c.answer for c in q.choices]},
            },
            "required": ["quotes", "justification", "choice"],
            "additionalProperties": False,
        }
    if summary:
        props["summary"] = {"type": "string"}
        props["contact_reason"] = {"type": "string"}
        props["outcome"] = {"type": "string", "enum": list(OUTCOMES)}
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }


def build_messages(
    template: PromptTemplate,
    transcript: Transcript,
    questions: list[Question],
    language: str,
    summary: bool,
) -> list[dict[str, str]]:
    """The chat messages of one call: system, then the task with the transcript and every
    question (the template is :data:`pipeline.llm.config.PROMPT_FILE`)."""
    prompt = template.for_language(language)
    lines = [
        f"[{i}] {prompt.speakers.get(u.speaker, u.speaker)}: {u.text}"
        for i, u in enumerate(transcript.utterances)
    ]
    blocks = [
        prompt.question_block.format(
            id=_key(i, q),
            question=q.question,
            choices=" / ".join(c.answer for c in q.choices),
            instructions=q.instructions or "-",
        )
        for i, q in enumerate(questions)
    ]
    task = prompt.task.format(
        transcript="\n".join(lines),
        questions="\n\n".join(blocks),
        summary=prompt.summary_task if summary else "",
    )
    return [{"role": "system", "content": prompt.system}, {"role": "user", "content": task}]


def parse_answer(
    text: str, questions: list[Question], summary: bool, model: str
) -> tuple[dict[str, LlmAnswer], CallSummary | None]:
    """The model's JSON text → answers by question hash (+ the summary). A question whose
    part is missing or malformed gets an answer with ``error``; never a guess."""
    try:
        data = json.loads(text)
    except ValueError:
        raise LlmFailed(f"the answer is not JSON: {text[:120]!r}") from None
    if not isinstance(data, dict):
        raise LlmFailed("the answer is not a JSON object")
    answers: dict[str, LlmAnswer] = {}
    for i, q in enumerate(questions):
        part = data.get(_key(i, q))
        names = [c.answer for c in q.choices]
        if not isinstance(part, dict):
            answers[q.question_sha256()] = LlmAnswer(
                error=f"the answer has no part {_key(i, q)!r}", model=model
            )
            continue
        quotes = part.get("quotes") or []
        choice = part.get("choice")
        if not isinstance(quotes, list) or not all(isinstance(x, str) for x in quotes):
            err = "quotes are not a list of strings"
        elif choice not in names:
            err = f"choice {choice!r} is none of {names}"
        else:
            err = None
        answers[q.question_sha256()] = LlmAnswer(
            choice=choice if err is None else None,
            justification=str(part.get("justification") or "") or None,
            quotes=[x for x in quotes if isinstance(x, str)][:MAX_QUOTES] if err is None else [],
            error=err,
            model=model,
        )
    made = None
    if summary:
        fields = {k: data.get(k) for k in ("summary", "contact_reason", "outcome")}
        if all(isinstance(v, str) and v.strip() for v in fields.values()) and (
            fields["outcome"] in OUTCOMES
        ):
            made = CallSummary(**fields, model=model)  # type: ignore[arg-type]
    return answers, made


class Judge:
    """Asks one backend; built once per process (the embedded model loads once).

    ``cache``: where answers are kept (the store); None keeps nothing. The concurrency
    limit (``QA_LLM_CONCURRENCY``) counts requests of this process, apart from ASR's.
    """

    def __init__(
        self,
        settings: LlmSettings,
        cache: AnswerCache | None = None,
        backend: Backend | None = None,
    ):
        self.settings = settings
        self.config: LlmConfig = llm_config(settings)
        # the answers' cache key: the model configuration, whether or not summaries are on
        self.key = canonical_sha256(self.config.model_copy(update={"summary": False}))
        self.template = load_prompt()
        self.cache = cache
        self._backend = backend
        self._backend_error: str | None = None
        self._slots = threading.BoundedSemaphore(settings.llm_concurrency)
        self._last = threading.local()

    @property
    def configured(self) -> bool:
        return self.settings.llm_backend is not None

    @property
    def backend(self) -> Backend | None:
        """The backend, made on first use (a model that cannot load: every answer says why)."""
        if self._backend is None and self._backend_error is None and self.configured:
            try:
                self._backend = make_backend(self.settings)
            except LlmFailed as exc:
                self._backend_error = str(exc)
        return self._backend

    def config_for(self, summary: bool) -> LlmConfig:
        """The ScoringConfig's ``llm`` section of a call that asks ``summary`` or not."""
        return self.config.model_copy(update={"summary": summary and self.configured})

    def ask(
        self,
        transcript: Transcript,
        questions: list[Question],
        language: str,
        *,
        summary: bool = False,
    ) -> Asked:
        """The answers of ``questions`` on ``transcript`` (cached ones are not asked again),
        and its summary when ``summary``; all that is not cached in one request. The last
        :class:`Asked` of this thread stays in ``self.last`` (what it cost, for reports)."""
        out = self._ask(transcript, questions, language, summary)
        self._last.value = out
        return out

    @property
    def last(self) -> Asked | None:
        return getattr(self._last, "value", None)

    def _ask(
        self, transcript: Transcript, questions: list[Question], language: str, summary: bool
    ) -> Asked:
        summary = summary and self.configured
        out = Asked()
        if not questions and not summary:
            return out
        if not self.configured:
            out.answers = {
                q.question_sha256(): LlmAnswer(error="no LLM backend configured") for q in questions
            }
            return out
        digest = canonical_sha256(transcript)
        wanted = [q.question_sha256() for q in questions] + ([SUMMARY_KEY] if summary else [])
        cached = self._cached(digest, wanted)
        for q in questions:
            if q.question_sha256() in cached:
                out.answers[q.question_sha256()] = LlmAnswer.model_validate(
                    cached[q.question_sha256()]
                )
        if summary and SUMMARY_KEY in cached:
            out.summary = CallSummary.model_validate(cached[SUMMARY_KEY])
        todo = [q for q in questions if q.question_sha256() not in out.answers]
        ask_summary = summary and out.summary is None
        if not todo and not ask_summary:
            return out
        model = f"{self.config.backend}:{self.config.model}"
        started = time.perf_counter()
        try:
            backend = self.backend
            if backend is None:
                raise LlmFailed(self._backend_error or "no LLM backend configured")
            messages = build_messages(self.template, transcript, todo, language, ask_summary)
            schema = answer_schema(todo, ask_summary)
            with self._slots:
                done = backend.complete(messages, schema, self.settings.llm_call_seconds)
            out.requests, out.seconds = 1, done.seconds
            out.prompt_tokens, out.completion_tokens = done.prompt_tokens, done.completion_tokens
            answers, made = parse_answer(done.text, todo, ask_summary, model)
        except LlmFailed as exc:
            out.error, out.seconds = str(exc), time.perf_counter() - started
            log.warning("LLM items of %s go to review: %s", transcript.call_id, exc)
            for q in todo:
                out.answers[q.question_sha256()] = LlmAnswer(error=str(exc), model=model)
            return out  # a failure is not cached: the next run asks again
        out.answers.update(answers)
        keep = {k: a.model_dump(mode="json") for k, a in answers.items() if a.error is None}
        if made is not None:
            made = made.model_copy(
                update={"language": language, "config_sha256": canonical_sha256(self.config)}
            )
            out.summary = made
            keep[SUMMARY_KEY] = made.model_dump(mode="json")
        self._keep(digest, keep)
        return out

    def _cached(self, digest: str, wanted: list[str]) -> dict[str, dict[str, Any]]:
        if self.cache is None:
            return {}
        return self.cache.llm_answers(digest, wanted, self.key)

    def _keep(self, digest: str, answers: dict[str, dict[str, Any]]) -> None:
        if self.cache is not None and answers:
            self.cache.put_llm_answers(digest, answers, self.key)


_JUDGES: dict[tuple[str, int], Judge] = {}
_JUDGES_LOCK = threading.Lock()


def process_judge(settings: LlmSettings, cache: AnswerCache | None = None) -> Judge:
    """This process's judge for these settings (one model per process), with ``cache``."""
    key = (settings.model_dump_json(), id(cache))
    with _JUDGES_LOCK:
        if key not in _JUDGES:
            _JUDGES[key] = Judge(settings, cache)
        return _JUDGES[key]
