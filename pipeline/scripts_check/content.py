"""Key words and the content-word route of ``required`` phrases in word languages (English).

Character / word similarity over a whole phrase does not know which words carry the
requirement: "thank you for calling at me telecom" is 0.81 like "thank you for calling
northwind telecom", while "could you confirm your date on birth please" is only 0.62 like
"can you please confirm your date of birth". Two rules fix both directions:

**Key words.** A rubric phrase marks the words that carry the requirement in brackets:
``thank you for calling [northwind] telecom``, ``can you confirm your [date of birth]``.
Whatever route passes the phrase (the aligner, the content words below, or a paraphrase),
each key word must be heard in that utterance: the same word, or an ASR variant of it (a
spelling ratio of at least ``key_min_ratio``, the same consonant skeleton, or split /
joined: "north wind"). Another company's name is not a variant of the rubric's one.
Function words inside a bracket (the "of" of "date of birth") are not required: ASR
swaps them ("date on birth", "date a birth"). Key words are also found from the check's
phrase set (:func:`derived_keys`): a content word every phrase says (not an act word of a
``synonyms`` group), a number, a name the rubric wrote capitalised.

**Slips.** A content word is heard in another form (confirming, verified, numbers) or with
one ASR slip (:func:`one_slip`: else / elue, date / daie); a consonant skeleton that loses
a consonant is a slip (birth / bath), one that changes a consonant is another word
(northwind / northbound).

**Requests.** When every phrase of a check is a request (a ``request_cues`` word, or "?"),
the routes that do not follow the phrase word by word (content words, paraphrase) pass only
a request: "I've noted your account number" says the words of "may i have your [account
number]" but not the act (:func:`act_mood_ok`). A modal after a subject states ("i can
see your account number"); "can i ..." asks.

**Act words.** The aligner (the phrase followed word by word) passes a phrase only when one
of its act words (content words besides key words, a synonym or a slip of one) is heard:
"thanks for calling earlier, did the reset work?" aligns 0.80 with "thanks for calling
goodbye" on the words around the act (:func:`act_word_heard`, ``aligned_act_word``).

**Content words.** An utterance also says a phrase when it says the phrase's content words,
in any order, within a window (politeness words, pronouns and modals ignored, contractions
expanded by the normaliser): all key words, and at least ``min_share`` of the others; a
phrase without marked key words needs all its content words. The
other content words of every phrase of the check count too (a rubric that lists "can you
confirm your [date of birth]" and "may i have your [account number]" accepts "may i have
your date of birth"), and so do the synonym groups in ``defaults.yaml`` → ``content``.
An utterance with a negation (not, never, nothing...) the phrase does not have is never
a content-word match ("there isn't anything else i can do for you").

Settings per language: ``defaults.yaml`` → ``content.<language>``; a language without an
entry (zh: characters, the pinyin aligner handles it) has neither route, but bracket marks
are still stripped and key words still required.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from itertools import product

from pydantic import BaseModel, ConfigDict, Field
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA

from pipeline.contracts import load_model
from pipeline.match_config import CHECKS_DEFAULTS
from pipeline.text import NormText, normalise

_BRACKET = re.compile(r"\[([^\[\]]+)\]")
_VOWELS = re.compile(r"(?<=.)[aeiouy]")
_VOWEL = re.compile(r"[aeiou]")
_WORD = re.compile(r"[A-Za-z][A-Za-z']*|\d[\d.,:]*")
_PUNCT = re.compile(r"[.,;:?!]")


class ContentSettings(BaseModel):
    """``defaults.yaml`` → ``content.<language>``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True  # the content-word route (key words are always required)
    min_ratio: float = Field(ge=0, le=100)  # spelling ratio: a misheard content word
    key_min_ratio: float = Field(ge=0, le=100)  # the same for a key word
    skeleton_ratio: float = Field(ge=0, le=100)  # consonant skeletons (birth / bath)
    min_share: float = Field(ge=0, le=1)  # of a phrase's non-key content words
    window_extra: int = Field(ge=0)  # words beyond the phrase's length in one window
    # a window holds at least this many words: a short phrase's two parts said apart
    # ("thanks a lot for your patience today, you take care now")
    min_window: int = Field(0, ge=0)
    light_words: tuple[str, ...] = ()
    synonyms: tuple[tuple[str, ...], ...] = ()
    negations: tuple[str, ...] = ()
    # politeness formulas whose negation negates nothing of the line ("i'll just need your
    # date of birth first, if you don't mind"): word sequences as normalised
    polite_negations: tuple[tuple[str, ...], ...] = ()
    # key words found from the phrase set itself (besides the [bracketed] ones)
    derive_keys: bool = True
    # a request (question, "please", "can you ...") is what a check of requests requires:
    # when every phrase of a check says one of these, an utterance passed by its content
    # words or as a paraphrase must say one too ("?" in the text counts)
    request_cues: tuple[str, ...] = ()
    # verbs that ask at the start of a clause that names the key words ("read me the account
    # number"), their modal lost; ``imperative_lead``: what may come before them ("just",
    # "okay", "so")
    request_imperatives: tuple[str, ...] = ()
    imperative_lead: tuple[str, ...] = ()
    # in a greeting or a farewell (no phrase a request or an offer), a name key word right
    # after one of these is the customer's, not the speaker's company: "hello, your
    # northwind telecom contract ends next month" (held-out 14)
    customer_possessives: tuple[tuple[str, ...], ...] = ()
    # a ``request_modals`` cue right after a ``statement_subjects`` word states, it does not
    # ask: "i can see your account number" (not "can i see ...")
    request_modals: tuple[str, ...] = ()
    statement_subjects: tuple[str, ...] = ()
    # ... unless a ``request_conditions`` word comes before the subject: "if i could just
    # take your date of birth" asks
    request_conditions: tuple[str, ...] = ()
    # word sequences that ask whatever the punctuation: "and just to confirm your date of
    # birth." (tiny.en dropped its "?")
    request_phrases: tuple[str, ...] = ()
    # a cue followed by a ``statement_subjects`` word opens a relative clause, it asks
    # nothing: "that date of birth matches what we have"
    relative_cues: tuple[str, ...] = ()
    question_determiners: tuple[str, ...] = ()
    question_objects: tuple[str, ...] = ()
    reported_auxiliaries: tuple[str, ...] = ()
    third_parties: tuple[str, ...] = ()
    receipt_verbs: tuple[str, ...] = ()
    # (cue, words...): a request cue right after one of those words asks nothing: "if you
    # need it later" is the customer's need, not the agent asking
    request_cue_not_after: tuple[tuple[str, ...], ...] = ()
    # (cue, words...): a request cue right before one of those words asks nothing: "just to
    # let you know, a new account number will be issued" tells
    request_cue_not_before: tuple[tuple[str, ...], ...] = ()
    # (cue, subjects...): a request cue that asks only with one of those subjects, or none
    # (the words of ``request_subject_skip`` passed over): "i'll need your date of birth",
    # "just need your date of birth"; not "you'll need your date of birth handy" or
    # "customers under 18 need a parent's date of birth"
    request_cue_subjects: tuple[tuple[str, ...], ...] = ()
    request_subject_skip: tuple[str, ...] = ()
    # a ``speaker_clause_cues`` word then an ``offer_speaker`` word opens a clause of what
    # the speaker does, before the key words: "could you hold on while i find your account
    # number" asks the customer to wait, not for the account number
    speaker_clause_cues: tuple[str, ...] = ()
    # a later clause of a request opened by one of these then an ``offer_speaker`` word
    # tells what the speaker will do with the answer: its words are no foreign words ("and
    # your date of birth, please, before i open the account?")
    request_tail_cues: tuple[str, ...] = ()
    # words that spell out the answer's form ("and your date of birth, please, day, month and
    # year?": held-out 17): no foreign words in a request
    request_details: tuple[str, ...] = ()
    # a request put off: one of these a few words after every key word heard, in its clause
    # ("we'll need your date of birth later if you decide to upgrade"), asks nothing now
    request_deferrals: tuple[str, ...] = ()
    # a value told: one of these right after every key word heard, then a number or a
    # redaction mask ("your account number is 5 0 3 2 ... / is [ACCOUNT], have you got a
    # pen?"), tells the caller, asks nothing
    request_told: tuple[str, ...] = ()
    # a condition on the key words: every key term heard in a clause opened by one of
    # ``request_condition_cues`` and followed by one of ``request_condition_verbs`` in a line
    # that asks no question ("if your date of birth is wrong on the account, we'll need a
    # copy of your passport") asks for nothing
    request_condition_cues: tuple[str, ...] = ()
    request_condition_verbs: tuple[str, ...] = ()
    # (opener words..., verb): "let me find your account number" is the agent's own act,
    # not a request for it (``speaker_act_skip`` words may come between: "let me just")
    speaker_act_openers: tuple[tuple[str, ...], ...] = ()
    speaker_act_verbs: tuple[str, ...] = ()
    speaker_act_skip: tuple[str, ...] = ()
    speaker_act_object: tuple[str, ...] = ()
    # a turn's first word or two lost by ASR (tiny.en drops a turn's onset: "for your call,
    # bye bye"): a phrase's leading act word may go unheard there (:func:`onset_lost`)
    onset_loss: bool = False
    onset_intensifiers: tuple[str, ...] = ()
    onset_thanks_clause: int = 0
    elliptical_leads: tuple[str, ...] = ()
    # the words right before the key words of an elliptical request ("and your date of
    # birth?", "and the date of birth of the account holder?"), and what may follow them
    elliptical_determiners: tuple[str, ...] = ("your",)
    elliptical_tails: tuple[tuple[str, ...], ...] = ()
    # words that are no act word right before "to": "we need to check" (an obligation)
    obligation_words: tuple[str, ...] = ()
    # act words too weak to show the act alone (the aligned route's act word; a stand-in
    # for another phrase's act word in the content-word route)
    weak_act_words: tuple[str, ...] = ()
    # (word, words allowed after it...): a word heard for a synonym only at the end of a
    # line or before one of those ("good by", "by now"; not "fixed by noon")
    final_only: tuple[tuple[str, ...], ...] = ()
    # (word, words...): the word counts only right before one of the words ("know your")
    only_before: tuple[tuple[str, ...], ...] = ()
    # (word, words...): a word is not itself right after one of those words: "you're
    # welcome to visit a store" (an adjective after "be"), not "welcome to northwind"
    not_after: tuple[tuple[str, ...], ...] = ()
    # (word, words...): a key word followed by one of those words (an ``object_skip`` word
    # may come between) acts on something else: "thanks for calling back", "thank you for
    # calling the other day", "thanks for calling the number on the letter from northwind";
    # an ``object_determiners`` word there counts only when no key word of the phrase
    # follows it ("thanks for calling the northwind help desk")
    other_object: tuple[tuple[str, ...], ...] = ()
    # (word, words...): a key word is the act only followed by one of those words, a key
    # word of the phrase, or the end of its clause: "welcome to northwind", "hello and
    # welcome, northwind telecom", not "northwind telecom's welcome offer ends on friday"
    act_followers: tuple[tuple[str, ...], ...] = ()
    object_determiners: tuple[str, ...] = ()
    object_skip: tuple[str, ...] = ()
    # the aligned route (the phrase followed word by word) must hear one of the phrase's act
    # words (its content words besides key words) when it has any: "thanks for calling
    # earlier" aligns 0.80 with "thanks for calling goodbye" but says no goodbye
    aligned_act_word: bool = False
    # an offer of the speaker's own act ("is there anything else i can help you with"): when
    # every phrase of a check says one of ``offer_subjects``, an utterance passed by its
    # content words or as a paraphrase must name the speaker (``offer_speaker``) or ask what
    # the customer needs (an ``offer_needs`` cue, "you" as an ``offer_customer`` word; not
    # an ``obligations`` cue followed by "to"): "can you do anything else with the router?"
    # asks about the customer's act, it offers nothing
    offer_subjects: tuple[str, ...] = ()
    offer_speaker: tuple[str, ...] = ()
    # the speaker in a hedge acts on nothing ("... would need a manager's approval, I'm afraid")
    speaker_hedges: tuple[tuple[str, ...], ...] = ()
    offer_customer: tuple[str, ...] = ()
    offer_needs: tuple[str, ...] = ()
    obligations: tuple[str, ...] = ()
    # words after an obligation cue that are a need misheard, no obligation ("need to hand
    # with": "need a hand with" as tiny.en writes it)
    obligation_misheard: tuple[tuple[str, ...], ...] = ()
    # (cue, words...): an ``offer_needs`` cue right after one of those words asks no need
    offer_needs_not_after: tuple[tuple[str, ...], ...] = ()
    # a need followed by one of these is the subject of a statement ("anything else you
    # want will have to go through our sales team"): no need asked
    offer_need_predicates: tuple[str, ...] = ()
    # words right before "else" that make it the last choice of a question, no offer ("the
    # cheaper plan or something else?")
    else_choice_leads: tuple[tuple[str, ...], ...] = ()
    # what a need may be asked about after "any other" / "anything more" ("any other
    # questions you had"): another noun there names a thing, no need ("is there any other
    # number you'd like us to call you on?")
    offer_need_objects: tuple[str, ...] = ()
    # an offer's short lead-in clause that says the work is done ("All done, was there
    # anything else?"); any other lead-in may ask about something ("Got a router, anything
    # else?")
    offer_lead_ins: tuple[str, ...] = ()
    # a closing formula said with the offer ("before I let you go"): no foreign words
    offer_closing_formulas: tuple[tuple[str, ...], ...] = ()
    # a need after one of these is a condition, asked only in a question ("if you need
    # anything else, you can always use the live chat" offers nothing)
    offer_conditions: tuple[str, ...] = ()
    # a word of these first in a line is an interjection whether or not ASR wrote its comma
    # ("Lovely and your date of birth as well, please."): no foreign word
    lead_interjections: tuple[str, ...] = ()
    # a short clause (three words at most) opened or closed by one of these addresses the
    # customer ("Anything else today, Mr Kowalski?", "..., please love."): no foreign word
    address_terms: tuple[str, ...] = ()
    # a question about the topic: when no phrase of a check is a request or an offer
    # (statements: a greeting, a farewell), a line passed by its content words or as a
    # paraphrase whose clause asks a question (a ``question_auxiliaries`` word followed by a
    # ``question_subjects`` word) before the check's key words is not the act: "did you get
    # the welcome pack from northwind?" is not "welcome to northwind"
    question_auxiliaries: tuple[str, ...] = ()
    question_subjects: tuple[str, ...] = ()
    # spellings read as one sound for the sound-alike rule (:func:`sound_slip`): th -> 0
    sound_digraphs: tuple[tuple[str, str], ...] = ()
    # a word's first letter that is not sounded (kn, wr, gn): ASR writes a homophone with
    # it ("you kneaded" for "you needed")
    silent_onsets: tuple[str, ...] = ()


@lru_cache(maxsize=1)
def _all_settings() -> dict[str, ContentSettings]:
    return load_model(CHECKS_DEFAULTS, dict[str, ContentSettings], section="content")


def content_settings(language: str) -> ContentSettings | None:
    """The content-word settings of ``language`` (None: characters, no such route)."""
    return _all_settings().get(language[:2])


def plain(phrase: str) -> str:
    """The phrase as said: bracket marks removed (``[northwind]`` → ``northwind``)."""
    return _BRACKET.sub(r"\1", phrase)


def key_terms(phrase: str, language: str) -> tuple[tuple[str, ...], ...]:
    """The bracketed key words of ``phrase``, each as its normalised content words."""
    cfg = content_settings(language)
    light = set(cfg.light_words) if cfg else set()
    out = []
    for m in _BRACKET.finditer(phrase):
        units = normalise(m.group(1), language).units
        content = tuple(u for u in units if u not in light) or tuple(units)
        if content:
            out.append(content)
    return tuple(out)


@lru_cache(maxsize=1024)
def derived_keys(phrase: str, phrases: tuple[str, ...], language: str) -> tuple[str, ...]:
    """Key words of ``phrase`` found from its check's phrase set ``phrases``, beyond the
    [bracketed] ones: the content words every phrase of the set says (sets of two phrases
    or more: "northwind" of "thank you for calling northwind" and "welcome to northwind";
    not act words said for one another, the ``synonyms`` groups: the content-word route
    weighs those), numbers, and names (a word the rubric wrote capitalised inside the
    phrase)."""
    cfg = content_settings(language)
    if cfg is None or not cfg.derive_keys:
        return ()
    words = _content_words(phrase, language, cfg)
    out = []
    if len(phrases) >= 2:
        sets = [set(_content_words(p, language, cfg)) for p in phrases]
        acts = {w for g in cfg.synonyms for w in g}
        out += [w for w in words if w in set.intersection(*sets) and w not in acts]
    raw = _WORD.findall(plain(phrase))
    for k, tok in enumerate(raw):
        named = k > 0 and tok[:1].isupper() and tok != "I"
        if tok[:1].isdigit() or named:
            out += [u for u in normalise(tok, language).units if u not in _light(cfg)]
    return tuple(dict.fromkeys(out))


def phrase_keys(phrase: str, phrases: list[str] | tuple[str, ...], language: str):
    """Every key word of ``phrase``: its brackets (:func:`key_terms`), then each key word
    found from the phrase set (:func:`derived_keys`) not already in a bracket, as its own
    one-word key."""
    marked = key_terms(phrase, language)
    inside = {w for k in marked for w in k}
    found = derived_keys(phrase, tuple(phrases), language)
    return marked + tuple((w,) for w in found if w not in inside)


def _is_request(utt: NormText, cfg: ContentSettings) -> bool:
    """A "?", or a request cue said (from five letters on, misspelt too: pleease, coud); a
    ``request_modals`` cue right after a ``statement_subjects`` word ("i can see") is none,
    nor a ``relative_cues`` word inside its clause ("the date of birth matches what's on the
    contract": held-out 23)."""
    if "?" in utt.original:
        return True
    units = utt.units

    def in_relative_clause(j: int) -> bool:
        """Inside its clause, and no "what's your ..." after it (ASR drops the commas of
        "just to check I'm speaking to the right person, what's your date of birth")."""
        k = j + 1 + (units[j + 1 : j + 2] in (("is",), ("was",), ("are",)))
        return not _opens_clause(utt, j, cfg) and not (
            units[k : k + 1] and units[k] in cfg.question_objects
        )

    for cue in cfg.request_phrases:
        words = tuple(cue.split())
        if any(units[j : j + len(words)] == words for j in range(len(units))):
            return True
    modals, subjects = set(cfg.request_modals), set(cfg.statement_subjects)
    conditions, relative = set(cfg.request_conditions), set(cfg.relative_cues)
    asked = [
        u
        for j, u in enumerate(units)
        if (
            u not in modals
            or not (j and units[j - 1] in subjects)
            or (j > 1 and units[j - 2] in conditions)
        )  # "if i could just take your ..."
        and not (
            u in relative
            and ((units[j + 1 : j + 2] and units[j + 1] in subjects) or in_relative_clause(j))
        )
        and not (j and any(u == g[0] and units[j - 1] in g[1:] for g in cfg.request_cue_not_after))
        and not any(
            u == g[0] and units[j + 1 : j + 2] and units[j + 1] in g[1:]
            for g in cfg.request_cue_not_before
        )  # "just to let you know, ..."
        and not any(
            u == g[0] and not _subject_is(units, j, g[1:], cfg) for g in cfg.request_cue_subjects
        )
    ]
    if set(cfg.request_cues) & set(asked):
        return True
    aux, who = set(cfg.question_auxiliaries), set(cfg.question_subjects)
    if any(
        a in aux and b in who and not (k and units[k - 1] in subjects)
        for k, (a, b) in enumerate(zip(units, units[1:], strict=False))
    ):
        # a question unpunctuated: "have you got your account number there"; not a
        # statement's verb ("so you have it for reference")
        return True
    units = tuple(u for u in units if u not in modals)
    return any(_misspelt_as(u, cfg.request_cues, cfg) for u in units)


def _misspelt_as(spoken: str, words: tuple[str, ...], cfg: ContentSettings) -> bool:
    """``spoken`` is one of ``words`` of five letters or more, misspelt or not (pleease,
    woould): a close spelling, at ``key_min_ratio``."""
    return any(len(w) >= 5 and fuzz.ratio(w, spoken) >= cfg.key_min_ratio for w in words)


def _subject_is(units: tuple[str, ...], j: int, subjects: tuple[str, ...], cfg) -> bool:
    """The subject of the verb at ``j`` is one of ``subjects`` or none: the nearest word
    before it, ``request_subject_skip`` words passed over, is a subject listed, a lead-in
    (``imperative_lead``, not a ``statement_subjects`` word) or the utterance's start."""
    k = j - 1
    while k >= 0 and any(
        units[k] == w or (len(w) >= 4 and word_heard(w, units[k], cfg.min_ratio, cfg))
        for w in cfg.request_subject_skip
    ):  # passed over misheard too ("i'll jus need")
        k -= 1
    return (
        k < 0
        or units[k] in subjects
        or (units[k] in cfg.imperative_lead and units[k] not in cfg.statement_subjects)
    )


@lru_cache(maxsize=1024)
def _requests_only(phrases: tuple[str, ...], language: str) -> bool:
    cfg = content_settings(language)
    if cfg is None or not cfg.request_cues:
        return False
    return all(_is_request(normalise(plain(p), language), cfg) for p in phrases)


@lru_cache(maxsize=1024)
def _offers_only(phrases: tuple[str, ...], language: str) -> bool:
    cfg = content_settings(language)
    if cfg is None or not cfg.offer_subjects:
        return False
    subjects = set(cfg.offer_subjects)
    return all(subjects & set(normalise(plain(p), language).units) for p in phrases)


@lru_cache(maxsize=1024)
def _statements_only(phrases: tuple[str, ...], language: str) -> bool:
    """No phrase of the check is a request, a question or an offer (a greeting, a
    farewell)."""
    cfg = content_settings(language)
    if cfg is None:
        return False
    return not any(
        _is_request(normalise(plain(p), language), cfg)
        or set(cfg.offer_subjects) & set(normalise(plain(p), language).units)
        for p in phrases
    )


def _clause_start(utt: NormText, k: int) -> int:
    """The first unit of the clause holding unit ``k`` (after the last punctuation mark
    before it in the original text, or the utterance's start)."""
    while k > 0 and not _PUNCT.search(utt.original[utt.spans[k - 1][1] : utt.spans[k][0]]):
        k -= 1
    return k


@lru_cache(maxsize=8)
def _openers(cfg: ContentSettings) -> frozenset[str]:
    """Words that may open a clause before its act: ``imperative_lead`` and
    ``lead_interjections`` ("okay", "lovely", "so", "and" ...)."""
    return frozenset(cfg.imperative_lead) | frozenset(cfg.lead_interjections)


def _opens_clause(utt: NormText, k: int, cfg: ContentSettings) -> bool:
    """Unit ``k`` comes first in its clause, after :func:`_openers` words at most."""
    return all(utt.units[i] in _openers(cfg) for i in range(_clause_start(utt, k), k))


def asks_about_topic(phrases: list[str] | tuple[str, ...], utt: NormText, language: str) -> bool:
    """``utt`` asks a question in the clause that holds the first key word of the check
    heard, before that word (a ``question_auxiliaries`` word then a ``question_subjects``
    word: "did you get the welcome pack from northwind?", "have you called northwind
    before?"): it speaks of the topic, it does not perform a statement's act."""
    cfg = content_settings(language)
    if cfg is None or not cfg.question_auxiliaries:
        return False
    return _opened_before_first_key(
        phrases, utt, language, cfg, set(cfg.question_auxiliaries), set(cfg.question_subjects)
    )


def speaker_acts_on_keys(
    phrases: list[str] | tuple[str, ...], utt: NormText, language: str
) -> bool:
    """``utt`` holds the check's first key word heard in a clause of the speaker's own act,
    opened before it in the same clause (a ``speaker_clause_cues`` word then an
    ``offer_speaker`` word: "while i find your account number", "once we have your date of
    birth"), or every key word heard is the object of what the speaker says they will do
    ("let me just find your account number", :func:`_self_act_on_every_key`): what is asked,
    if anything, is something else."""
    cfg = content_settings(language)
    if cfg is None or not cfg.speaker_clause_cues:
        return False
    return _opened_before_first_key(
        phrases, utt, language, cfg, set(cfg.speaker_clause_cues), set(cfg.offer_speaker)
    ) or _self_act_on_every_key(phrases, utt, language, cfg)


def _self_act_on_every_key(phrases, utt: NormText, language: str, cfg) -> bool:
    """Every key word of the check heard in ``utt`` is the object of the speaker's own act
    in its clause: a ``speaker_act_openers`` sequence, (past ``speaker_act_skip`` words) a
    ``speaker_act_verbs`` word, then only ``speaker_act_object`` or key words up to it:
    "let me just find your account number" (but not "let me find your account number,
    what's your date of birth?")."""
    if not cfg.speaker_act_openers:
        return False
    heard = _keys_heard(phrases, utt, language, cfg)
    if not heard:
        return False
    units, skip, verbs = utt.units, set(cfg.speaker_act_skip), set(cfg.speaker_act_verbs)
    between = set(cfg.speaker_act_object) | {units[q] for q in heard}

    def acted_on(q: int) -> bool:
        for j in range(_clause_start(utt, q), q):
            for opener in cfg.speaker_act_openers:
                if units[j : j + len(opener)] != opener:
                    continue
                k = j + len(opener)
                while k < q and units[k] in skip:
                    k += 1
                if k + 1 < q and units[k] not in verbs and units[k + 1] in verbs:
                    k += 1  # one word misheard on the way: "let me juit look up"
                if k < q and units[k] in verbs and set(units[k + 1 : q]) <= between:
                    return True
        return False

    return all(acted_on(q) for q in heard)


def _imperative_on_keys(phrases, utt: NormText, language: str, cfg) -> bool:
    """A clause that opens (past ``imperative_lead`` words) with a ``request_imperatives``
    verb, and holds a key word of the check, asks for it whatever cue ASR lost before it:
    "just read me the account number off the top of your bill" (its "can you" unheard;
    held-out 14); a clause of at most three words before it may hold the verb ("just read
    me, the account number")."""
    if not cfg.request_imperatives:
        return False
    imperatives, lead, units = set(cfg.request_imperatives), set(cfg.imperative_lead), utt.units
    for q in _keys_heard(phrases, utt, language, cfg):
        start = _clause_start(utt, q)
        starts = [start]
        if start and start - _clause_start(utt, start - 1) <= 3:
            starts.append(_clause_start(utt, start - 1))  # "just read me, the account number"
        for j in starts:
            while j < q and units[j] in lead:
                j += 1
            if j < q and units[j] in imperatives:
                return True
    return False


def _every_key_followed(
    phrases, utt: NormText, language: str, cfg, follows, heard: list[int] | None = None
) -> bool:
    """Every key word of the check heard in ``utt`` (or every position of ``heard``) is
    followed, within three words of its clause, by a unit ``k`` for which ``follows(k)``
    holds."""
    if heard is None:
        heard = _keys_heard(phrases, utt, language, cfg)
    if not heard:
        return False
    clause = _clause_ids(utt)
    return all(
        any(clause[k] == clause[q] and follows(k) for k in range(q + 1, min(len(utt), q + 4)))
        for q in heard
    )


def request_deferred(phrases: list[str] | tuple[str, ...], utt: NormText, language: str) -> bool:
    """Every key term of the check heard in ``utt`` is followed, within three words of its
    clause, by a ``request_deferrals`` word: the request is put off ("we'll need your date
    of birth later if you decide to upgrade", "... if you ever want to add a line")."""
    cfg = content_settings(language)
    if cfg is None or not cfg.request_deferrals:
        return False
    later = set(cfg.request_deferrals)
    ends = _key_term_ends(phrases, utt, language, cfg)
    return _every_key_followed(
        phrases, utt, language, cfg, lambda k: utt.units[k] in later, heard=ends
    )


def request_told(phrases: list[str] | tuple[str, ...], utt: NormText, language: str) -> bool:
    """Every key word of the check heard in ``utt`` is followed, in its clause, by a
    ``request_told`` word and then a number or a mask: the speaker reads the value out ("your account
    number is 5 0 3 2 2 7 1 8, have you got a pen?"), whatever the rest of the line asks."""
    cfg = content_settings(language)
    if cfg is None or not cfg.request_told:
        return False
    told, units, clause = set(cfg.request_told), utt.units, _clause_ids(utt)

    def a_value(j: int) -> bool:  # number words are digits by now
        return units[j][:1].isdigit() or _masked(utt, j)

    def read_out(k: int) -> bool:
        return units[k] in told and any(
            j < len(units) and clause[j] == clause[k] and a_value(j) for j in (k + 1, k + 2)
        )

    return _every_key_followed(phrases, utt, language, cfg, read_out)


def request_reported(phrases: list[str] | tuple[str, ...], utt: NormText, language: str) -> bool:
    """The clause of the first key word heard is a question about what someone else did:
    a ``reported_auxiliaries`` word then a ``third_parties`` word first in it, after a
    lead-in at most ("Did the engineer ask you for your account number?": held-out 24), or
    what the customer received ("did you" and a ``receipt_verbs`` word)."""
    cfg = content_settings(language)
    if cfg is None or not cfg.reported_auxiliaries:
        return False
    heard = _keys_heard(phrases, utt, language, cfg)
    if not heard:
        return False
    units, lead = utt.units, _openers(cfg)
    k = _clause_start(utt, heard[0])
    while k < heard[0] and units[k] in lead and units[k] not in cfg.reported_auxiliaries:
        k += 1
    if k + 1 >= heard[0] or units[k] not in cfg.reported_auxiliaries:
        return False
    # "Did you get the account number we texted you yesterday?" asks what the customer
    # received (held-out 26)
    received = (
        units[k + 1] in cfg.offer_customer
        and k + 2 < len(units)
        and units[k + 2] in cfg.receipt_verbs
    )
    return units[k + 1] in cfg.third_parties or received


def request_conditional(phrases: list[str] | tuple[str, ...], utt: NormText, language: str) -> bool:
    """No question asked, and every key term of the check heard in ``utt`` is a condition's
    subject (``request_condition_cues`` opening its clause, a ``request_condition_verbs``
    word within three words after it): "if your date of birth is wrong on the account,
    we'll need a copy of your passport" asks for nothing."""
    cfg = content_settings(language)
    if cfg is None or not cfg.request_condition_cues or "?" in utt.original:
        return False
    cues, verbs = set(cfg.request_condition_cues), set(cfg.request_condition_verbs)
    units, clause = utt.units, _clause_ids(utt)

    def in_condition(k: int) -> bool:
        start = _clause_start(utt, k)
        return units[k] in verbs and any(
            units[j] in cues for j in (start, start + 1) if clause[j] == clause[k]
        )

    ends = _key_term_ends(phrases, utt, language, cfg)
    return _every_key_followed(phrases, utt, language, cfg, in_condition, heard=ends)


def _key_term_ends(phrases, utt: NormText, language: str, cfg) -> list[int]:
    """Where the last word of a key term is heard with the term's other words before it:
    "date of birth" whole, not a lone "account" of "account number"."""
    heard = _keys_heard(phrases, utt, language, cfg)

    def at(w: str) -> list[int]:
        return [
            q
            for q in heard
            if utt.units[q] in _alternatives(w, cfg)
            or word_heard(w, utt.units[q], cfg.key_min_ratio, cfg)
        ]

    terms = {t for p in phrases for t in phrase_keys(p, phrases, language)}
    return sorted({q for t in terms for q in _term_ends(t, {w: at(w) for w in t})})


def _masked(utt: NormText, j: int) -> bool:
    """Unit ``j`` is a redaction mask ([ACCOUNT]): the transcript a form scores is redacted,
    and a mask is a value said, never the word it is named after."""
    a, b = utt.spans[j]
    return utt.original[a - 1 : a] + utt.original[b : b + 1] == "[]"


def _name_heard_as(utt: NormText, j: int, word: str, cfg: ContentSettings) -> bool:
    """Unit ``j`` is a name the ASR wrote, taken for ``word`` only by its spelling: a first
    name (one capitalised word, not at a sentence's start) heard as a sound-alike ("You're
    on with Brooke." is no "born"; held-out 22 in audio), or a word of a run of capitalised
    words (a company's name as written) that is no sound-alike of ``word`` ("Hello,
    Northwood Energy" is no Northwind; held-out 24). The word itself, its forms or one slip
    in it still count, and so does a run that sounds like it ("North When Telecom")."""
    spoken = utt.units[j]
    joined = spoken + (utt.units[j + 1] if j + 1 < len(utt) else "")  # "North Wind"
    if any(x == word or _stem(x) == _stem(word) or one_slip(word, x) for x in (spoken, joined)):
        return False

    def capital(k: int) -> bool:
        return 0 <= k < len(utt) and utt.original[utt.spans[k][0]].isupper()

    def run_on(k: int, m: int) -> bool:  # units k < m in one phrase: no punctuation between
        return not any(c in ".?!," for c in utt.original[utt.spans[k][1] : utt.spans[m][0]])

    if not capital(j):
        return False
    if (capital(j + 1) and run_on(j, j + 1)) or (capital(j - 1) and run_on(j - 1, j)):
        return not any(sound_slip(word, x, cfg) for x in (spoken, joined))
    before = utt.original[: utt.spans[j][0]].rstrip()
    return bool(before) and before[-1] not in ".?!"


def _keys_heard(phrases, utt: NormText, language: str, cfg) -> list[int]:
    """Where the check's key words are heard in ``utt``, in order (not in a mask)."""
    keys = {w for p in phrases for k in phrase_keys(p, phrases, language) for w in k}
    return sorted(
        {
            q
            for w in keys
            for a in _alternatives(w, cfg)
            for q in _positions(a, utt.units, cfg.key_min_ratio, cfg, variants=a == w)
            if not _masked(utt, q)
        }
    )


def _opened_before_first_key(
    phrases, utt: NormText, language: str, cfg, openers: set[str], seconds: set[str]
) -> bool:
    """The clause holding the check's first key word heard has an ``openers`` word followed
    by a ``seconds`` word before that key word."""
    heard = _keys_heard(phrases, utt, language, cfg)
    if not heard:
        return False
    first, units = heard[0], utt.units
    return any(
        units[j] in openers and units[j + 1] in seconds
        for j in range(_clause_start(utt, first), first - 1)
    )


def onset_lost(
    phrase: str, phrases: list[str] | tuple[str, ...], utt: NormText, language: str
) -> tuple[str, ...]:
    """The first word or two of ``phrase`` that ASR lost at the start of a turn, when ``utt``
    (the turn's text) starts with the phrase's next word and then says the word after it (a
    word may come between): "for your call, bye bye" for "[thanks] for [calling] goodbye",
    "you for calling" for "[thank] you for [calling] ...". Only an act word said for others
    (a ``synonyms`` word: thank, welcome) and light words may be lost, never a name, and
    only with another key word of the phrase left to hear. Empty: nothing lost."""
    cfg = content_settings(language)
    if cfg is None or not cfg.onset_loss or len(utt) < 2:
        return ()
    words = normalise(plain(phrase), language).units
    keys = {w for k in phrase_keys(phrase, phrases, language) for w in k}
    acts, light, units = {w for g in cfg.synonyms for w in g}, _light(cfg), utt.units
    for k in (1, 2):
        lost, rest = words[:k], words[k:]
        if len(rest) < 2 or not keys - set(lost):
            continue
        # two words left: both key words, or a common word ("you") is all that would show
        # the lost one ("You take care of yourself, bye." thanks nobody; held-out 17)
        if len(rest) == 2 and not all(w in keys for w in rest):
            continue

        # the next word, one said for it or misheard ("Evening, Northwind" for "[good]
        # [morning] [northwind]"; held-out 15)
        # ... or heard split in two ("After noon, Northwind": held-out 22 in audio)
        def split_heard(alts: tuple[str, ...], j: int) -> bool:
            return j + 1 < len(units) and any(
                _heard_split(a, units[j], units[j + 1], cfg) for a in alts
            )

        first = _alternatives(rest[0], cfg)
        # only a run that ends in "much" ("ever so much", "very much"): "So for your call"
        # thanks nobody
        start = 0
        while start < len(units) - 2 and units[start] in cfg.onset_intensifiers:
            start += 1
        if start and units[start - 1] != "much":
            start = 0
        if any(word_heard(a, units[start], cfg.min_ratio, cfg) for a in first):
            after = start + 1
        elif split_heard(first, start):
            after = start + 2
        else:
            continue
        if not any(w in keys and w in acts for w in lost):
            continue
        if not all((w in keys and w in acts) or w in light for w in lost):
            continue
        nxt = _alternatives(rest[1], cfg)
        # a short clause of thanks may come between ("Morning, thanks for holding, Northwind
        # Telecom, ...": held-out 25)
        after = _past_thanks_clause(utt, after, cfg)
        if any(word_heard(a, u, cfg.min_ratio, cfg) for a in nxt for u in units[after : after + 2]):
            return tuple(lost)
        # ("morning north wind telecom": held-out 21)
        if any(split_heard(nxt, j) for j in (after, after + 1)):
            return tuple(lost)
    return ()


def _past_thanks_clause(utt: NormText, k: int, cfg: ContentSettings) -> int:
    """The first unit after a clause of at most ``onset_thanks_clause`` words that starts at
    unit ``k`` with a thanks ("thanks for holding"; without its comma, "thanks for" and one
    word), else ``k``."""
    if k >= len(utt) or not cfg.onset_thanks_clause:
        return k
    if utt.units[k] not in _alternatives("thank", cfg):
        return k
    clause = _clause_ids(utt)
    end = k
    while end < len(utt) and clause[end] == clause[k]:
        end += 1
    if end < len(utt) and end - k <= cfg.onset_thanks_clause:
        return end
    # no comma written (tiny.en's lowercase lines): "thanks [you] for [your] holding" and no
    # more ("morning thanks for holing northwind telecom": held-out 26)
    j = k + 1 + (utt.units[k + 1 : k + 2] == ("you",))
    if utt.units[j : j + 1] != ("for",):
        return k
    j += 1 + (utt.units[j + 1 : j + 2] == ("your",))
    return j + 1 if j + 1 < len(utt) else k


def _needs_asked(units: tuple[str, ...], cfg: ContentSettings, question: bool = False) -> list[int]:
    """Positions of the customer's need asked about: an ``offer_needs`` cue said in order,
    a word or none between its words ("anything else you need from me", "would you like",
    "you still need"), "you" as any ``offer_customer`` word, a misheard word heard; not an
    ``obligations`` cue followed by "to" ("you will need to visit a store"), nor a cue
    right after its ``offer_needs_not_after`` words ("have you had")."""

    def said(w: str, u: str) -> bool:
        if w == "you":
            return u in cfg.offer_customer
        return word_heard(w, u, cfg.min_ratio, cfg)

    def end_of(words: list[str], j: int) -> int | None:
        if not said(words[0], units[j]):
            return None
        for w in words[1:]:
            nxt = [k for k in (j + 1, j + 2) if k < len(units) and said(w, units[k])]
            if not nxt:
                return None
            j = nxt[0]
        return j

    not_after = {cue: set(before) for cue, *before in cfg.offer_needs_not_after}
    light = _light(cfg)
    more = set(_alternatives("else", cfg))
    objects = (
        set(cfg.offer_need_objects) | more | {w for g in cfg.synonyms if "anything" in g for w in g}
    )

    def of_a_thing(j: int) -> bool:
        """ "any other number you'd like": a noun between "other" and the cue."""
        k = j - 1
        while k >= 0 and units[k] in light:
            k -= 1
        return (
            k >= 1
            and units[k - 1] in more
            and units[k] not in cfg.offer_conditions
            and not any(word_heard(w, units[k], cfg.min_ratio, cfg) for w in objects)
        )

    def predicate(u: str) -> bool:
        """An ``offer_need_predicates`` word, from five letters on misspelt too ("woould")."""
        return u in cfg.offer_need_predicates or (
            len(u) >= 5 and _misspelt_as(u, cfg.offer_need_predicates, cfg)
        )

    out = set()
    for cue in cfg.offer_needs:
        words = cue.split()
        for j in range(len(units)):
            e = end_of(words, j)
            if e is None or (
                units[e + 1 : e + 2] == ("to",)
                and cue in cfg.obligations
                and not any(units[e + 1 : e + 1 + len(m)] == m for m in cfg.obligation_misheard)
            ):
                continue
            if units[e + 1 : e + 2] and predicate(units[e + 1]):
                continue  # "anything else you want will have to go through sales" states
            if not question and any(predicate(u) for u in units[e + 2 : e + 4]):
                continue  # "anything else you want added will have to wait" (held-out 20)
            if j and units[j - 1] in not_after.get(cue, ()):
                continue  # "have you had anything else go wrong" asks about the past
            if j and units[j - 1] in cfg.offer_conditions and not question:
                continue  # "if you need anything else, you can use the live chat" asks nothing
            if cfg.offer_need_objects and of_a_thing(j):
                continue
            out.add(e)
    return sorted(out)


def _more_stated(utt: NormText, cfg: ContentSettings) -> bool:
    """Every "else" (or a word said for it) is a statement's subject (an
    ``offer_need_predicates`` word right after it and no "you" or "there" after that:
    "Anything else would need a new ticket, so I'll just do this one.", held-out 27; not
    "anything else would you like?"), the last choice of a question ("Did you want the
    cheaper plan or something else?": held-out 29), or the object of the speaker's own next
    step, in a clause a ``request_tail_cues`` word and the speaker open, three words at most
    between the speaker and it ("I'll need to check with my team leader before I do anything
    else.": held-out 30)."""
    units = utt.units
    more = _alternatives("else", cfg)
    asked = {*cfg.offer_customer, "there"}
    spots = [k for k, u in enumerate(units) if u in more]
    clause = _clause_ids(utt)
    tails, speaker = set(cfg.request_tail_cues), set(cfg.offer_speaker)

    def stated(k: int) -> bool:
        return bool(
            units[k + 1 : k + 2]
            and units[k + 1] in cfg.offer_need_predicates
            and units[k + 2 : k + 3]
            and units[k + 2] not in asked
        )

    def deferred(k: int) -> bool:
        return any(
            units[j] in tails and units[j + 1] in speaker and clause[j] == clause[k]
            for j in range(max(0, k - 5), k - 2)
        )

    def a_choice(k: int) -> bool:
        return any(units[max(0, k - len(lead)) : k] == lead for lead in cfg.else_choice_leads)

    return bool(spots) and all(stated(k) or a_choice(k) or deferred(k) for k in spots)


def _is_offer(utt: NormText, cfg: ContentSettings) -> bool:
    """The speaker named as who acts ("i can help", "can we do"), or the customer's need
    asked about (:func:`_needs_asked`); never when what more there is is only stated
    (:func:`_more_stated`)."""
    if _more_stated(utt, cfg):
        return False
    units = utt.units
    hedged = _inside_formulas(units, cfg.speaker_hedges, cfg)
    speaker = set(cfg.offer_speaker)
    named = any(u in speaker and k not in hedged for k, u in enumerate(units))
    return named or bool(_needs_asked(units, cfg, "?" in utt.original))


def act_mood_ok(phrases: list[str] | tuple[str, ...], utt: NormText, language: str) -> bool:
    """False when every phrase of the check is a request and ``utt`` is none: "I've noted
    your account number" says the words of "may i have your account number" but not the
    act; or when every phrase offers the speaker's act and ``utt`` offers nothing ("do you
    have anything else plugged into the router?" is not "anything else i can help you
    with"); or when no phrase is a request or an offer and ``utt`` asks about the topic
    (:func:`asks_about_topic`), or, in a check of requests, the key words sit in a clause of
    the speaker's own act (:func:`speaker_acts_on_keys`). Applies to the routes that do not
    follow the phrase word by word (content words, paraphrase)."""
    cfg = content_settings(language)
    if cfg is None:
        return True
    if _requests_only(tuple(phrases), language) and (
        not (
            _is_request(utt, cfg)
            or _imperative_on_keys(phrases, utt, language, cfg)
            or elliptical_request(phrases, utt, language)
        )
        or speaker_acts_on_keys(phrases, utt, language)
        or request_deferred(phrases, utt, language)
        or request_told(phrases, utt, language)
        or request_conditional(phrases, utt, language)
        or request_reported(phrases, utt, language)
    ):
        return False
    if _statements_only(tuple(phrases), language) and asks_about_topic(phrases, utt, language):
        return False
    return not _offers_only(tuple(phrases), language) or _is_offer(utt, cfg)


@lru_cache(maxsize=8)
def _light(cfg: ContentSettings) -> frozenset[str]:
    return frozenset(cfg.light_words)


def _skeleton(word: str) -> str:
    """Consonants, doubled letters once: calling → clng, colin → cln, birth → brth."""
    out = _VOWELS.sub("", word)
    return "".join(c for k, c in enumerate(out) if k == 0 or c != out[k - 1])


def _stem(word: str) -> str:
    """The word without an inflection: confirming / confirmed → confirm, verified →
    verify, numbers → number (a word said in another form is the same content word)."""
    # "ving" drops the verb's e ("giving" is "give": held-out 30)
    for end, repl, keep in (
        ("ies", "y", 3),
        ("ied", "y", 3),
        ("ving", "ve", 2),
        ("ing", "", 4),
        ("ed", "", 4),
    ):
        if word.endswith(end) and len(word) - len(end) >= keep:
            return word[: -len(end)] + repl
    if word.endswith("s") and not word.endswith("ss") and len(word) >= 4:
        return word[:-1]
    return word


def _sounds(word: str, cfg: ContentSettings) -> str:
    """The consonant sounds of ``word``: a silent final e dropped, digraphs as one sound
    (``sound_digraphs``), then its skeleton: health → hl0, else → els, birth → br0."""
    if len(word) > 3 and word.endswith("e") and word[-2] not in "aeiouy":
        word = word[:-1]
    for spelt, sound in cfg.sound_digraphs:
        word = word.replace(spelt, sound)
    return _skeleton(word)


def sound_slip(word: str, spoken: str, cfg: ContentSettings) -> bool:
    """A sound-alike ASR slip: the same first vowel and consonant sounds but the last one
    changed (help / health, else / elf, birth / bird), or, in a longer word, the last one
    unheard (northwind / "north when"). A sound changed before the last is another word
    (northwind / northbound, calling / coming), and so is another vowel (help / hold,
    thank / thing)."""
    a, b = _sounds(word, cfg), _sounds(spoken, cfg)
    if len(a) < 3 or a[0] != b[:1] or _VOWEL.findall(word)[:1] != _VOWEL.findall(spoken)[:1]:
        return False
    if len(a) == len(b):
        return a[:-1] == b[:-1]
    return len(a) >= 5 and b == a[:-1]


def one_slip(word: str, spoken: str) -> bool:
    """One ASR slip in a content word: one letter changed (4-letter words: else / elue,
    date / daie) or, from five letters on, one letter changed, dropped, added or two
    swapped; the first letter kept either way."""
    if len(word) < 4 or word[0] != spoken[:1]:
        return False
    if len(word) == 4:
        return len(spoken) == 4 and sum(a != b for a, b in zip(word, spoken, strict=True)) == 1
    return OSA.distance(word, spoken, score_cutoff=1) <= 1


def word_heard(word: str, spoken: str, min_ratio: float, cfg: ContentSettings) -> bool:
    """Whether ``spoken`` is ``word`` or an ASR variant of it (another form of it, one slip,
    a close spelling, the same consonant skeleton, it without its unstressed first
    syllable)."""
    if word == spoken:
        return True
    if spoken[:2] in cfg.silent_onsets and word[:2] not in cfg.silent_onsets:
        spoken = spoken[1:]
        if word == spoken:
            return True
    if len(word) < 3 or len(spoken) < 3:
        return False  # short words: exact only ("a" is not "i", "as" is not "ask")
    if _stem(word) == _stem(spoken) or one_slip(word, spoken):
        return True
    if _stem(spoken) != spoken and one_slip(_stem(word), _stem(spoken)):
        return True  # another form of it with one slip: "conforming" for "confirming"
    if (
        len(word) >= 6
        and word[0] in "aeiou"
        and len(spoken) >= 4
        and len(word) - len(spoken) <= 2
        and word.endswith(spoken)
    ):
        return True  # an unstressed first syllable unheard: "count number" for "account number"
    gap = abs(len(word) - len(spoken))
    if gap > max(2, len(word) // 3):
        return False  # a slip keeps the length: "read" is not inside "already"
    if word[0] != spoken[0]:
        return False  # a slip keeps the first sound: "update" is not "date"
    if sound_slip(word, spoken, cfg):
        return True
    # a spelling close enough, but a short word that loses two letters is another word
    # ("get" is not "great")
    if fuzz.ratio(word, spoken) >= min_ratio and (gap <= 1 or len(word) > 5):
        return True
    a, b = _skeleton(word), _skeleton(spoken)
    # a consonant unheard is a slip (birth / bath: brth / bth); one changed is another word
    # (northwind / northbound: nrthwnd / nrthbnd)
    # (two consonants are too few to tell words apart: care / carry)
    return (a == b and len(word) >= 4 and len(a) >= 3) or (
        len(a) >= 3 and len(a) != len(b) and fuzz.ratio(a, b) >= cfg.skeleton_ratio
    )


def _heard_split(word: str, first: str, second: str, cfg: ContentSettings) -> bool:
    """``word`` heard split over two units ("north wind", "after noon"): from five letters
    on, a close spelling of the two joined."""
    return len(word) >= 5 and fuzz.ratio(word, first + second) >= cfg.key_min_ratio


def _positions(
    word: str,
    units: tuple[str, ...],
    min_ratio: float,
    cfg: ContentSettings,
    *,
    variants: bool = True,
) -> list[int]:
    """Unit positions where ``word`` is heard (alone, or split over two units). A light
    word said is never a content word misheard ("there" is not "other"); an
    ``obligation_words`` word before "to" is no act ("we need to check"); a ``final_only``
    word counts only last, or before one of the words allowed after it ("good by"); a
    ``not_after`` word not after the words listed with it ("you're welcome"); an
    ``only_before`` word only right before a word listed with it ("know your"). An act word
    of another synonym group said is that word, not this one misheard ("cheers" is thanks,
    not "cheerio"; held-out 10). Without ``variants`` (a synonym of the word looked for,
    not the word itself), only its own forms and a close spelling count: a sound-alike of a
    synonym is a guess twice over ("bills" is no "blessed", "araid" no "arvo", "came" no
    "care"; held-out 20)."""
    others = _act_words(cfg) - set(_alternatives(word, cfg))
    plain = _light(cfg)
    light = plain | others

    def heard(u: str) -> bool:
        if variants:
            return word_heard(word, u, min_ratio, cfg)
        return (
            len(u) >= 3
            and u[0] == word[0]
            and (
                _stem(word) == _stem(u)
                or (abs(len(word) - len(u)) <= 1 and fuzz.ratio(word, u) >= min_ratio)
            )
        )

    out = [k for k, u in enumerate(units) if u == word or (u not in light and heard(u))]
    out += [
        k
        for k in range(len(units) - 1)
        if len(word) >= 5
        and units[k][:1] == word[:1]
        # another act word and a light word, or two light words, are no word split in two:
        # "cheers so" is no "cheerio" ("good buy" is goodbye, "a count" account)
        and not (units[k] in plain and units[k + 1] in plain)
        and not (units[k] in others and units[k + 1] in light)
        and (
            _heard_split(word, units[k], units[k + 1], cfg)
            # two short words are no sound-alike: "as an" is no "assist" (held-out 15); nor
            # one whose second half is another act word: "than bye" is no "thank" (held-out 27)
            or (
                max(len(units[k]), len(units[k + 1])) > 2
                and units[k + 1] not in others
                and sound_slip(word, units[k] + units[k + 1], cfg)
            )
        )
    ]
    if word in cfg.obligation_words:
        out = [k for k in out if units[k + 1 : k + 2] != ("to",)]
    for final, *after in cfg.final_only:
        if word == final:
            out = [k for k in out if k == len(units) - 1 or units[k + 1] in after]
    for only, *after in cfg.only_before:
        if word == only:
            out = [k for k in out if units[k + 1 : k + 2] and units[k + 1] in after]
    for other, *before in cfg.not_after:
        if word == other:
            out = [k for k in out if not (k and units[k - 1] in before)]
    return sorted(set(out))


def keys_heard(
    keys: tuple[tuple[str, ...], ...],
    utt: NormText,
    language: str,
    *,
    aligned: bool = False,
    phrases: list[str] | tuple[str, ...] = (),
) -> bool:
    """Every key word (every content word of every bracket) is heard in ``utt``. With
    ``aligned`` (the whole phrase already aligned closely), a bracket of several content
    words may lose half of them to ASR ("may i have your account, please"); a one-word
    bracket (a company's name) never: mark a name as its own bracket."""
    cfg = content_settings(language)
    if not keys:
        return True
    if cfg is None:  # characters: the key must be said as written (after normalising)
        text = "".join(utt.units)
        return all("".join(k) in text for k in keys)

    words = frozenset(w for k in keys for w in k)

    owned = not (phrases and _statements_only(tuple(phrases), language))

    def heard(w: str) -> bool:
        return bool(key_positions(w, words, utt, cfg, owned=owned))

    if aligned:
        return all(2 * sum(map(heard, k)) >= len(k) for k in keys)
    return all(heard(w) for k in keys for w in k)


def key_positions(
    word: str,
    keys: set[str] | frozenset[str],
    utt: NormText,
    cfg: ContentSettings,
    *,
    owned: bool = True,
) -> list[int]:
    """Positions where the key word ``word`` (or a synonym) is heard as the phrase's own
    act: :func:`_positions`, without those where it acts on something else (an
    ``other_object`` follower in the same clause: "calling back", "calling the number on
    the letter"; a determiner counts only when no key word of ``keys`` follows it) or where
    an ``act_followers`` word is followed by none of its words, no key word and no clause
    end ("northwind's welcome offer"). Without ``owned``, a name (no act word) right after a
    ``customer_possessives`` sequence is the customer's, not heard as the speaker's own: "hello,
    your northwind telecom contract ends next month". Never in a redaction mask."""
    units = utt.units
    found = {
        (p, a)
        for a in _alternatives(word, cfg)
        for p in _positions(a, units, cfg.key_min_ratio, cfg, variants=a == word)
        if not _masked(utt, p) and not _name_heard_as(utt, p, a, cfg)
    }
    followers = {w: set(after) for w, *after in cfg.other_object}
    allowed = {w: set(after) for w, *after in cfg.act_followers}
    dets = set(cfg.object_determiners)

    key_spots: set[int] | None = None  # where any key word is heard: found once, if asked

    def key_at(j: int) -> bool:
        nonlocal key_spots
        if key_spots is None:
            key_spots = {
                p
                for w in keys
                for a in _alternatives(w, cfg)
                for p in _positions(a, units, cfg.key_min_ratio, cfg)
            }
        return j in key_spots

    # the last word of a key term run into the next word by ASR, right after the term's
    # other words: "your date of birthday month and year" (not "happy birthday")
    if len(word) >= 5:
        found |= {
            (p, word)
            for p, u in enumerate(units)
            if u.startswith(word)
            and 0 < len(u) - len(word) <= 3
            and any(key_at(j) for j in (p - 1, p - 2) if j >= 0)
        }

    def elsewhere(k: int, a: str) -> bool:
        if a not in allowed and a not in followers:
            return False
        # the unit after the word (after both halves of a word heard split: "well come")
        one = units[k] == a or word_heard(a, units[k], cfg.key_min_ratio, cfg)
        j = k + 1 if one else k + 2
        if a in allowed:  # the clause ends, or an allowed word / a key word follows
            return not (
                j >= len(units) or _clause_start(utt, j) > k or units[j] in allowed[a] or key_at(j)
            )
        if j < len(units) and units[j] in cfg.object_skip:
            j += 1
        if j >= len(units) or units[j] not in followers[a] or _clause_start(utt, j) > k:
            return False  # "thank you for calling, this is maria": another clause
        if units[j] not in dets:
            return True
        # "the northwind help desk": a key word of the phrase right after the determiner
        return not key_at(j + 1)

    # a position is the act unless a word it is heard as (or the word said) has a rule that
    # says otherwise ("ringing" is heard as "ring" too: its own rule still holds)
    words_at: dict[int, set[str]] = {}
    for k, a in found:
        words_at.setdefault(k, {units[k]}).add(a)
    out = sorted(k for k, ws in words_at.items() if not any(elsewhere(k, a) for a in ws))
    if not owned and word not in _act_words(cfg):
        out = [
            k
            for k in out
            if not any(k >= len(o) and units[k - len(o) : k] == o for o in cfg.customer_possessives)
        ]
    return out


def act_word_heard(
    phrase: str, phrases: list[str] | tuple[str, ...], utt: NormText, language: str
) -> bool:
    """``utt`` says one of ``phrase``'s act words (content words besides its key words; a
    synonym or an ASR variant counts), or says nothing but words of the check's phrases, or
    ``phrase`` has none, or the rule is off (``aligned_act_word``). For the aligned route:
    the words around the act are not it."""
    cfg = content_settings(language)
    if cfg is None or not cfg.aligned_act_word:
        return True
    keys = {w for k in phrase_keys(phrase, phrases, language) for w in k}
    acts = [w for w in _content_words(phrase, language, cfg) if w not in keys]
    if not acts or not _adds_content(utt, phrases, language, cfg):
        return True
    # a weak act word shows the act in a request when the utterance asks ("May I have your
    # account, please." as tiny.en heard sample c04 on an Intel Xeon); a statement's ("i
    # have your notes") shows nothing
    if not (_requests_only(tuple(phrases), language) and _is_request(utt, cfg)):
        acts = [w for w in acts if w not in cfg.weak_act_words]
    return any(
        _positions(a, utt.units, cfg.min_ratio, cfg) for w in acts for a in _alternatives(w, cfg)
    )


def _adds_content(
    utt: NormText, phrases: list[str] | tuple[str, ...], language: str, cfg: ContentSettings
) -> bool:
    """``utt`` says a content word no phrase of the check (or a synonym) has: it says
    something besides a shortened phrase ("thank you for calling" at the close says only
    the phrase's words; "thanks for calling earlier, did the reset work?" says more)."""
    known, light = _check_words(tuple(phrases), language, cfg), _light(cfg)
    return any(u not in light and u not in known for u in utt.units)


@lru_cache(maxsize=1024)
def _check_words(phrases: tuple[str, ...], language: str, cfg: ContentSettings) -> frozenset[str]:
    """The content words of a check's phrases and their synonyms."""
    return frozenset(
        a for p in phrases for w in _content_words(p, language, cfg) for a in _alternatives(w, cfg)
    )


@dataclass(frozen=True)
class ContentHit:
    """A phrase said in other words: its content words found in one window."""

    phrase: str
    share: float  # of the non-key content words heard
    start: int  # unit span in the utterance
    end: int
    heard: tuple[str, ...]  # the phrase words heard
    missing: tuple[str, ...]


def _content_words(phrase: str, language: str, cfg: ContentSettings) -> list[str]:
    light = set(cfg.light_words)
    return [u for u in normalise(plain(phrase), language).units if u not in light]


@lru_cache(maxsize=8)
def _act_words(cfg: ContentSettings) -> frozenset[str]:
    """Every word of the ``synonyms`` groups."""
    return frozenset(w for g in cfg.synonyms for w in g)


def _alternatives(word: str, cfg: ContentSettings) -> tuple[str, ...]:
    for group in cfg.synonyms:
        if word in group:
            return group
    return (word,)


def content_match(phrases: list[str], utt: NormText, language: str) -> ContentHit | None:
    """The phrase of ``phrases`` whose content words ``utt`` says best (all key words, and
    at least ``min_share`` of the others, in one window, no negation added), or None."""
    cfg = content_settings(language)
    if cfg is None or not cfg.enabled or not len(utt):
        return None
    negs = set(cfg.negations)
    # a request or an offer that says the key words and nothing the check does not speak of
    # ("and your date of birth, please?", "anything else for you today?") is the act: its
    # act verb may go unsaid
    bare = (
        _requests_only(tuple(phrases), language) or _offers_only(tuple(phrases), language)
    ) and (
        not _foreign_words(phrases, utt, language, cfg)
        or asks_which(phrases, utt, language)
        or elliptical_request(phrases, utt, language)  # its tail's words are no topic
    )
    if not act_mood_ok(phrases, utt, language) and not (
        bare and _offers_only(tuple(phrases), language)
    ):
        return None
    pool = {  # the act words of every phrase of the check (key words, weak ones excluded)
        w
        for p in phrases
        for w in _content_words(p, language, cfg)
        if w not in {x for k in phrase_keys(p, phrases, language) for x in k}
        and w not in cfg.weak_act_words
    }
    # in a check of offers, the customer's need asked about is the offer ("anything else
    # you'd like a hand with"): it stands for one act word of the phrase
    asked = (
        _needs_asked(utt.units, cfg, "?" in utt.original)
        if _offers_only(tuple(phrases), language)
        else []
    )
    statements = _statements_only(tuple(phrases), language)
    clause = _clause_ids(utt)
    polite = _inside_formulas(utt.units, cfg.polite_negations)
    best: ContentHit | None = None
    for phrase in phrases:
        keys = {w for k in phrase_keys(phrase, phrases, language) for w in k}
        words = _content_words(phrase, language, cfg)
        if not words or negs & set(words):
            continue
        others = [w for w in words if w not in keys]
        width = max(len(normalise(plain(phrase), language)) + cfg.window_extra, cfg.min_window)
        found: dict[str, list[int]] = {}
        for w in dict.fromkeys(words):
            if w in keys:
                found[w] = key_positions(w, keys, utt, cfg, owned=not statements)
                continue
            # a weak act word of a statement is itself: the farewell's "have" (a great day)
            # is not the request verbs' "have" (get, take, let ...)
            weak = statements and w in cfg.weak_act_words
            alts = (w,) if weak else _alternatives(w, cfg)
            found[w] = sorted(
                {p for a in alts for p in _positions(a, utt.units, cfg.min_ratio, cfg)}
            )
        if any(not found[w] for w in keys):
            continue
        terms = [k for k in phrase_keys(phrase, phrases, language) if len(k) > 1]
        if not all(_in_order(k, found) for k in terms):
            continue  # "the mobile number on the account" is no account number
        # other phrases' act words stand in for this one's (the phrase set's own variants)
        extra = [w for w in pool - set(words) if _positions(w, utt.units, cfg.min_ratio, cfg)]
        spans = [(a, min(len(utt), a + width)) for a in range(max(1, len(utt) - width + 1))]
        # a turn that opens with the phrase's first key word and ends with its last is the
        # phrase said with more between ("Thanks so much, Priya, you have a great rest of
        # your week, bye.": held-out 26)
        if (
            len(utt) > width
            and len(utt) <= 2 * width
            and words[0] in keys
            and words[-1] in keys
            and 0 in found[words[0]]
            and len(utt) - 1 in found[words[-1]]
        ):
            spans.append((0, len(utt)))
        for start, end in spans:
            inside = {w for w, ps in found.items() if any(start <= p < end for p in ps)}
            if not keys <= inside or not _apart(keys, found, start, end):
                continue
            if _negated(utt, clause, polite, start, end, found, keys, cfg):
                continue
            heard_others = [w for w in others if w in inside]
            n_others = len(others)
            hits = len(heard_others)
            if keys and hits < n_others:  # a listed variant's act word fills a gap
                hits += min(
                    n_others - hits,
                    sum(
                        1
                        for w in extra
                        if any(
                            start <= p < end and not _clause_negated(utt, clause, polite, p, cfg)
                            for p in _positions(w, utt.units, cfg.min_ratio, cfg)
                        )
                    )
                    + any(start <= p < end for p in asked),
                )
            share = hits / n_others if n_others else 1.0
            # a phrase without key words: every content word ("found from the phrase")
            if share < (cfg.min_share if keys else 1.0) and not (keys and bare):
                continue
            # a bare request or offer that rests on one key word alone: heard as itself or a
            # synonym, not as a misheard word ("Move the ad on." is no "anything more?")
            if (
                share < cfg.min_share
                and len(inside) < 2
                and not all(
                    any(
                        start <= q < end and utt.units[q] in _alternatives(k, cfg) for q in found[k]
                    )
                    for k in keys
                )
            ):
                continue
            if best is None or share > best.share:
                best = ContentHit(
                    phrase,
                    round(share, 4),
                    start,
                    end,
                    tuple(sorted(inside)),
                    tuple(w for w in words if w not in inside),
                )
    return best


def _apart(keys: set[str], found: dict[str, list[int]], start: int, end: int) -> bool:
    """Each key word heard at a word of its own in the window: one word heard as two keys
    is one of them at most ("cheurio" is cheers or cheerio, not thanks and goodbye;
    held-out 15)."""
    spots = [[p for p in found[w] if start <= p < end] for w in sorted(keys)]
    return any(len(set(pick)) == len(pick) for pick in product(*spots))


def _in_order(term: tuple[str, ...], found: dict[str, list[int]], gap: int = 3) -> bool:
    """The words of a key term of several words heard in their order, each at most ``gap``
    units after the one before ("date of birth", "account number"; ASR may split a word)."""
    return bool(_term_ends(term, found, gap))


def _term_ends(term: tuple[str, ...], found: dict[str, list[int]], gap: int = 3) -> set[int]:
    """Where ``term``'s last word ends a run of its words heard in order (:func:`_in_order`)."""
    ends = set(found.get(term[0], ()))
    for w in term[1:]:
        ends = {p for p in found.get(w, ()) if any(0 < p - e <= gap for e in ends)}
        if not ends:
            break
    return ends


def _clause_ids(utt: NormText) -> list[int]:
    """The clause of each unit (a punctuation mark between two units starts a new one)."""
    clause = [0] * len(utt)
    for k in range(1, len(utt)):
        gap = utt.original[utt.spans[k - 1][1] : utt.spans[k][0]]
        clause[k] = clause[k - 1] + bool(_PUNCT.search(gap))
    return clause


def _negated(
    utt: NormText,
    clause: list[int],
    polite: set[int],
    start: int,
    end: int,
    found: dict[str, list[int]],
    keys: set[str],
    cfg: ContentSettings,
) -> bool:
    """A negation in a clause of the window that holds the phrase's key words or says one of
    its act words (or a synonym) as written, from the clause the window starts in: "I can't
    help with anything else" is no offer, nor "your date of birth is on file, so no need to
    give it", while "could you give me the account number? I didn't quite catch it" and "no
    worries, can I just get your account number" still ask; a negation inside a politeness
    formula ("if you don't mind") negates nothing. ``clause``: :func:`_clause_ids`;
    ``polite``: :func:`_inside_formulas` of the ``polite_negations``."""
    held = {
        clause[p]
        for w, ps in found.items()
        for p in ps
        if start <= p < end and (w in keys or utt.units[p] in _alternatives(w, cfg))
    }
    negs = set(cfg.negations)
    first = clause.index(clause[start])  # the start of the window's first clause
    return any(
        utt.units[p] in negs and clause[p] in held and p not in polite for p in range(first, end)
    )


def _clause_negated(
    utt: NormText, clause: list[int], polite: set[int], p: int, cfg: ContentSettings
) -> bool:
    """A negation (outside a politeness formula) in the clause of unit ``p``: another
    phrase's act word said there stands in for nothing ("anything else will need to be done
    through the app, I can't do it here")."""
    negs = set(cfg.negations)
    return any(
        u in negs and clause[q] == clause[p] and q not in polite for q, u in enumerate(utt.units)
    )


def _inside_formulas(
    units: tuple[str, ...],
    formulas: tuple[tuple[str, ...], ...],
    heard: ContentSettings | None = None,
) -> set[int]:
    """Positions of ``units`` inside an occurrence of one of ``formulas``; with ``heard``
    (the settings), a formula's word may be heard as an ASR variant of itself ("i'm araid"),
    its last word split in two ("im a frayed": held-out 24)."""
    out: set[int] = set()

    def alike(f: tuple[str, ...], said: tuple[str, ...]) -> bool:
        return heard is not None and all(
            word_heard(w, u, heard.min_ratio, heard) for w, u in zip(f, said, strict=True)
        )

    for f in formulas:
        n = len(f)
        for j in range(len(units) - n + 1):
            said = units[j : j + n]
            if said == f or alike(f, said):
                out.update(range(j, j + n))
            elif (
                heard is not None
                and j + n < len(units)
                and (said[:-1] == f[:-1] or alike(f[:-1], said[:-1]))
                and word_heard(f[-1], units[j + n - 1] + units[j + n], heard.min_ratio, heard)
            ):
                out.update(range(j, j + n + 1))
    return out


def _foreign_words(
    phrases: list[str], utt: NormText, language: str, cfg: ContentSettings
) -> list[str]:
    """Content words of ``utt`` that are no word of the check (its phrases' words, their
    synonym groups, the request cues) nor an ASR variant of one, nor in a short clause before
    the last (an interjection: "Lovely, and the date of birth, please?")."""
    vocab = {
        a for p in phrases for w in _content_words(p, language, cfg) for a in _alternatives(w, cfg)
    }
    vocab |= set(cfg.request_cues)
    light = _light(cfg)
    clause = _clause_ids(utt)
    negs = set(cfg.negations)
    # a request's lead-in may be a short clause of any words ("Okay, first things first,
    # date of birth please?"); an offer's may not ("Got a router, anything else?" asks about
    # devices)
    request = _requests_only(tuple(phrases), language)
    longest = 3 if request else 1
    speaker = set(cfg.offer_speaker)
    tails = {  # clauses of what the speaker will do with the answer (requests only)
        clause[k]
        for k in range(1, len(utt) - 1)
        if request
        and clause[k] != clause[k - 1]
        and utt.units[k] in cfg.request_tail_cues
        and utt.units[k + 1] in speaker
    }

    size = Counter(clause)
    negated = {clause[j] for j, u in enumerate(utt.units) if u in negs}

    done = set(cfg.offer_lead_ins)
    done_stems = {_stem(w) for w in done}

    def alone(k: int) -> bool:
        """In a clause of at most ``longest`` words, no negation, before the utterance's
        last clause: an interjection ("Lovely, and the date of birth, please?")."""
        c = clause[k]
        return c != clause[-1] and size[c] <= longest and c not in negated

    lead = next((k for k, u in enumerate(utt.units) if u not in light), None)
    # an offer's lead-in of the work done, before the offer, with or without its comma ("All
    # done, was there anything else?", "OK, all done was there anything else.")
    first_vocab = next(
        (k for k, u in enumerate(utt.units) if u not in light and u in vocab), len(utt)
    )
    # a whole clause of the work done before the offer's ("Lovely, that's the refund
    # processed. Was there anything else?", heard "the refund process": held-out 20)
    offer_clause = clause[first_vocab] if first_vocab < len(utt) else None
    done_clauses = {
        clause[k]
        for k, u in enumerate(utt.units)
        if not request
        and (_stem(u) in done_stems or any(one_slip(d, u) for d in done))
        and k < first_vocab
        and clause[k] != offer_clause
        and clause[k] not in negated
    }
    # a redaction mask is a value, never a foreign word ("Anything else today, Mr. [NAME]?":
    # held-out 20 in audio), nor is a politeness formula's negation ("And your date of birth,
    # if you don't mind?": held-out 22), nor an offer's closing formula ("Before I let you go")
    addressed = _address_clauses(utt, cfg, clause)
    tail = _tail_address(utt, cfg)
    formulas = cfg.polite_negations + (() if request else cfg.offer_closing_formulas)
    formulaic = _inside_formulas(utt.units, formulas, cfg)
    return [
        u
        for k, u in enumerate(utt.units)
        if len(u) >= 3  # "te", "a": what is left of a function word
        and not alone(k)
        and not (k == lead and u in cfg.lead_interjections)
        and not (not request and k < first_vocab and u in done)
        and clause[k] not in tails
        and clause[k] not in done_clauses
        and clause[k] not in addressed
        and k not in tail
        and not _masked(utt, k)
        and k not in formulaic
        and not (request and u in cfg.request_details)
        and u not in light
        and u not in vocab
        and not any(word_heard(w, u, cfg.min_ratio, cfg) for w in vocab)
        # a word of the check heard split in two ("any thing else at all?": held-out 23)
        and not (k + 1 < len(utt) and u + utt.units[k + 1] in vocab)
        and not (k and utt.units[k - 1] + u in vocab)
    ]


def _tail_address(utt: NormText, cfg: ContentSettings) -> set[int]:
    """An ``address_terms`` word and the one word after it that ends the utterance, its
    comma unwritten ("Anything else at all misses Petrovic.": held-out 23 in audio)."""
    n, address = len(utt), set(cfg.address_terms)
    if n >= 3 and utt.units[n - 2] in address:
        return {n - 2, n - 1}
    return set()


def _address_clauses(utt: NormText, cfg: ContentSettings, clause: list[int]) -> set[int]:
    """Short clauses addressing the customer, an ``address_terms`` word first or last in it
    ("Anything else today, Mr Kowalski?", "..., please love.")."""
    size, address = Counter(clause), set(cfg.address_terms)
    return {
        clause[k]
        for k, u in enumerate(utt.units)
        if u in address
        and size[clause[k]] <= 3
        and (
            k == 0 or clause[k - 1] != clause[k] or k == len(utt) - 1 or clause[k + 1] != clause[k]
        )
    }


def elliptical_request(phrases: list[str] | tuple[str, ...], utt: NormText, language: str) -> bool:
    """The key words after "your" (an ``elliptical_determiners`` word), an
    ``elliptical_tails`` phrase at most after them, and nothing else but a lead-in ("and",
    "okay") and an address or a mask: "And your date of birth, Ms Lindqvist." asks, its "?"
    lost by ASR (held-out 21 in audio), and so does "Okay, and the date of birth of the
    account holder." (held-out 33 in audio); "your date of birth is on file" has a predicate
    and does not."""
    cfg = content_settings(language)
    if cfg is None:
        return False
    heard = _keys_heard(phrases, utt, language, cfg)
    units = utt.units
    if not heard or heard[0] == 0 or units[heard[0] - 1] not in cfg.elliptical_determiners:
        return False
    clause = _clause_ids(utt)
    lead, light = set(cfg.imperative_lead) | set(cfg.elliptical_leads), _light(cfg)
    first = heard[0]

    def tail_at(j: int, t: tuple[str, ...]) -> bool:  # key words and light ones before it
        return units[j : j + len(t)] == t and all(
            k in heard or units[k] in light for k in range(first, j)
        )

    tail = next(
        (
            range(j, j + len(t))
            for t in cfg.elliptical_tails
            for j in range(first + 1, len(units))
            if tail_at(j, t)
        ),
        range(0),
    )
    last = max(heard[-1], tail.stop - 1)
    if clause[first] != clause[last]:
        return False
    addressed = _address_clauses(utt, cfg, clause)
    # a clause of lead-in words alone ("Okay, and your date of birth.")
    leading = {
        c
        for c in set(clause)
        if all(u in lead for u, d in zip(units, clause, strict=True) if d == c)
    }
    for k, u in enumerate(units):
        if first - 1 <= k <= last and (k in heard or k in tail or u in light or k == first - 1):
            continue
        if k < first - 1 and (clause[k] == clause[first] or clause[k] in leading) and u in lead:
            continue
        if clause[k] != clause[first] and (clause[k] in addressed or _masked(utt, k)):
            continue
        return False
    return True


def asks_which(phrases: list[str] | tuple[str, ...], utt: NormText, language: str) -> bool:
    """A ``question_determiners`` word right before the key words, first in its clause after
    a lead-in at most, in a check of requests: "Which account number are you calling about
    today?" asks for it whatever else the question says (held-out 23)."""
    cfg = content_settings(language)
    if cfg is None or not cfg.question_determiners or not _requests_only(tuple(phrases), language):
        return False
    heard = _keys_heard(phrases, utt, language, cfg)
    if not heard or heard[0] == 0:
        return False
    at = heard[0] - 1
    if not any(utt.units[at] == d or one_slip(d, utt.units[at]) for d in cfg.question_determiners):
        return False
    return _opens_clause(utt, at, cfg)


def adds_negation(phrase: str, utt: NormText, language: str) -> bool:
    """``utt`` says a negation (not, never, nothing...) that ``phrase`` does not."""
    cfg = content_settings(language)
    if cfg is None:
        return False
    negs = set(cfg.negations)
    return bool(negs & set(utt.units)) and not negs & set(normalise(plain(phrase), language).units)
