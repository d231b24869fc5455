"""Key words and content words of English ``required`` phrases (scripts_check/content.py):
tables of agent line -> verdict with the shipped en_telecom rubric (its [bracketed] key
words), and the pieces one by one. The paraphrase model is off here (``semantic: false``)
so that each verdict is the lexical + content-word route's own."""

from __future__ import annotations

import pytest

from pipeline.config import resolve_rubric_path
from pipeline.contracts import read_yaml
from pipeline.schema import Transcript, Utterance
from pipeline.scripts_check import check_items, parse_rubric
from pipeline.scripts_check.content import (
    act_mood_ok,
    act_word_heard,
    adds_negation,
    content_match,
    content_settings,
    derived_keys,
    key_positions,
    key_terms,
    keys_heard,
    phrase_keys,
    plain,
    word_heard,
)
from pipeline.text import normalise


@pytest.fixture(scope="module")
def telecom():
    data = read_yaml(resolve_rubric_path("en_telecom"))[0]
    return parse_rubric({**data, "semantic": False}, path="rubrics/en_telecom.yaml")


def verdict(rubric, item: str, line: str) -> tuple[bool | None, str]:
    t = Transcript(
        call_id="c",
        language="en",
        utterances=[
            Utterance(speaker="agent", start=0, end=3, text=line),
            Utterance(speaker="customer", start=4, end=5, text="okay"),
        ],
    )
    (r,) = [r for r in check_items(t, rubric) if r.id == item]
    return r.passed, r.reason


@pytest.mark.parametrize(
    ("item", "line", "passed"),
    [
        # the false fails: ASR slips, word order, politeness, contractions
        ("identity_check", "Could you confirm your date on birth, please?", True),
        ("identity_check", "May I have your date of birth?", True),  # acts of other phrases
        ("identity_check", "What's your account number?", True),
        ("anything_else", "Is there anything else I can help you with today?", True),
        ("anything_else", "Can I help you with anything else?", True),
        ("farewell", "thank for calling Northwind goodbye", True),
        ("farewell", "Thanks so much for calling, take care, bye.", True),
        ("greeting", "thank for calling north wind telecom", True),  # split name
        ("greeting", "Northwind Telecom, thank you for calling, this is Maria.", True),
        # the false passes: another company, the topic without the act, negations
        ("greeting", "Thank you for calling at me, telecom", False),
        ("greeting", "Welcome to Southwind Telecom, how can I help?", False),
        ("greeting", "Did you call Northwind Telecom before?", False),
        ("identity_check", "Your date of birth is on file.", False),
        ("identity_check", "I can see your date of birth here already.", False),
        ("identity_check", "We don't need your date of birth.", False),
        ("anything_else", "There isn't anything else I can do for you.", False),
        ("anything_else", "Anything else will have to wait until Monday.", False),
        ("farewell", "Thanks for holding.", False),
        ("farewell", "Have a great day.", False),
        # issue 29, second session: one slip in a key word, another form of an act word
        ("anything_else", "Is there anything elee I could help you with?", True),
        ("anything_else", "is there anything else i can health you with today", True),
        ("identity_check", "Would you mind confirming your date of birth?", True),
        # ... and the act's words said as a statement: every phrase of the item is a request
        ("identity_check", "I've confirmed your account number.", False),
        ("identity_check", "We've verified your date of birth already.", False),
        ("identity_check", "I have your account number on screen.", False),
        # a request that names the key words and nothing else asks for them ...
        ("identity_check", "Your account number, please.", True),
        ("identity_check", "And the date of birth on the account, please?", True),
        # ... one that speaks of something more does not
        ("identity_check", "Would you like to update your account number?", False),
        ("identity_check", "Do you want to change your date of birth?", False),
        ("identity_check", "Your date of birth is on file, isn't it?", False),
        ("anything_else", "Is there anything else you need today?", True),
        ("anything_else", "Is anything else broken?", False),
        # issue 29, third session: sound-alike slips (the last consonant sound changed) ...
        ("anything_else", "Can I health you with anything else?", True),
        ("anything_else", "is there anything elf i can help you with", True),
        ("identity_check", "may i take your date of bird", True),
        ("greeting", "thank you for calling north when telecom", True),
        # ... and who offers: the agent's act, or the customer's need asked about
        ("anything_else", "Do you need help with anything else?", True),
        ("anything_else", "Anything else you'd like help with?", True),
        ("anything_else", "Can you do anything else with the router?", False),
        ("anything_else", "Do you have anything else plugged into the router?", False),
        ("anything_else", "Anything else, you'll need to visit a store.", False),
        # issue 29, fifth session: an apostrophe ASR dropped, request forms ("if I could",
        # an unpunctuated question), more words said for the act ...
        ("identity_check", "whats the account number your calling about", True),
        ("identity_check", "Could I grab your account number first?", True),
        ("identity_check", "Okay, if I could just get your date of birth.", True),
        ("identity_check", "have you got your account number there for me", True),
        ("identity_check", "Could you quote your account number, please?", True),
        ("anything_else", "Anything more I can sort out for you?", True),
        ("anything_else", "Will there be anything else today?", True),
        ("anything_else", "Any other questions I can help with?", True),
        ("greeting", "Thank you for contacting Northwind Telecom, my name's Raj.", True),
        ("farewell", "Thanks for getting in touch, goodbye.", True),
        ("farewell", "thanks for calling all the best good by", True),  # "by" at the end
        # ... and the words of the act in another function: a short word that lost two
        # letters ("get" is not "great"), "by" inside a sentence, a question about the
        # topic, "need to" (an obligation, not the act)
        ("farewell", "Thanks for calling, let's get this sorted.", False),
        ("farewell", "Thanks for calling, the outage should be fixed by noon.", False),
        ("farewell", "Thanks for calling, stand by while I check.", False),
        ("greeting", "Did you get the welcome pack from Northwind?", False),
        ("greeting", "Have you ever called Northwind about this?", False),
        ("identity_check", "I'll need to update the date of birth on file.", False),
        ("anything_else", "Is there anything else we need to check on the router?", False),
        ("identity_check", "Do you know where to find your account number?", False),
        ("greeting", "You're welcome to visit any Northwind store.", False),  # an adjective
        ("greeting", "Hi, welcome to Northwind, you're welcome to ask me anything.", True),
        # dev3: more words for the acts; an offer or request that says only the check's
        # words is the act; "have" alone closes nothing; "as" is no slip of "ask"
        ("greeting", "Thank you for phoning Northwind Telecom, Alan speaking.", True),
        ("farewell", "Okay, thanks for calling today, cheerio.", True),
        ("identity_check", "Could you share your date of birth with me, please?", True),
        ("identity_check", "Can you state your date of birth, please?", True),
        ("identity_check", "mind if i take your date of birth", True),
        ("anything_else", "Anything else for you at all?", True),
        ("anything_else", "Is there anything I can help you with besides that?", True),
        ("anything_else", "Anything else wrong with it?", False),
        ("farewell", "Thanks for calling back, I have your notes here.", False),
        ("identity_check", "Your date of birth shows as the fifth of May.", False),
        # the farewell's "have" (a great day) is not the request verbs' have / take / get
        ("farewell", "Thanks for calling, I'll take a good look at it now.", False),
        ("farewell", "Thanks for calling, let me get a good look at it.", False),
        ("farewell", "Thanks for calling, have a good one.", True),
        # held-out 7 (as development data): two consonants tell no words apart (carry is no
        # care), "what" + a subject is a relative clause, a one-word clause an interjection
        ("farewell", "Thanks for calling me back so quickly, let's carry on.", False),
        ("identity_check", "Thanks, that date of birth matches what we have.", False),
        ("identity_check", "Lovely, and then the date of birth on the account, please?", True),
        ("identity_check", "So what's your date of birth?", True),
        # Kokoro voices through tiny.en (script_calls_en.py --tts kokoro, dev3) and dev2: "go
        # through", "run me through" ask for it; a statement does not
        ("identity_check", "Can you go through your date of birth,", True),
        ("identity_check", "Can you just run me through your date of birth?", True),
        ("identity_check", "I'll go through your date of birth in a minute.", False),
        # "just to confirm" asks though tiny.en dropped the "?" (dev2)
        ("identity_check", "and just to confirm your date of birth.", True),
        ("identity_check", "And just to verify your account number.", True),
        ("identity_check", "I have confirmed your date of birth.", False),
        # issue 29, i29g: the act word acting on another object (held-out 7 and 8, dev2):
        # another call, something else called, "welcome" before a noun
        ("greeting", "Thanks for calling the number on the letter from Northwind.", False),
        ("greeting", "Thanks for calling us back about the refund, Northwind Telecom.", False),
        ("greeting", "Northwind Telecom's welcome offer ends on Friday.", False),
        ("greeting", "Did you get our welcome email from Northwind?", False),
        ("greeting", "Thanks for calling the Northwind Telecom help desk, how can I help?", True),
        ("greeting", "thank you for calling the north wind telecom support line", True),
        ("greeting", "Welcome back to Northwind Telecom, how can I help today?", True),
        ("greeting", "Welcome through to Northwind, Bethany speaking.", True),
        ("greeting", "Hello and welcome, Northwind Telecom, Leah speaking.", True),
        ("greeting", "welcome northwind telecom leah speaking", True),  # "to" unheard
        ("farewell", "Thank you for calling the other day, was the fix okay?", False),
        ("farewell", "thanks for calling back i have your notes here", False),
        ("farewell", "Thanks for calling earlier, I have some news.", False),
        ("farewell", "Thanks for the call yesterday, have a look at the router.", False),
        ("farewell", "Thank you for calling, this evening was busy, goodbye.", True),
        ("farewell", "Thank you for calling us, have a great weekend.", True),
        ("farewell", "Thanks for calling in today, bye bye.", True),
        # a weak act word ("have") shows a request's act when the line asks: sample c04 as
        # tiny.en heard it on an Intel Xeon ("number" lost); a statement's "have" does not
        ("identity_check", "I am sorry to hear that. May I have your account, please.", True),
        ("identity_check", "I am sorry to hear that. I have your account here.", False),
        ("identity_check", "Can I have your mobile number for the text?", False),
        # engine 8 / en_telecom v5 (held-out 12): a negation counts in the clauses of the
        # phrase's key words and act words; a window of at least 12 words; "DOB"
        ("identity_check", "Could you give me the account number again? I didn't catch it.", True),
        ("identity_check", "Yeah, no worries, can I just get your account number?", True),
        ("identity_check", "Your date of birth is on file, so no need to give it.", False),
        ("identity_check", "Your account number is on your bill if you need it later.", False),
        ("identity_check", "Just for data protection, can you confirm your DOB?", True),
        ("anything_else", "I can't help with anything else on this line, sorry.", False),
        ("farewell", "Thanks a lot for your patience today, you take care now.", True),
        ("farewell", "Thanks for holding, and enjoy the rest of your day.", True),
        ("farewell", "Enjoy your day.", False),  # a close, no thanks
        ("farewell", "Thanks for your patience today, I'll send the details by email.", False),
        ("greeting", "Morning, Northwind Telecom, Callum speaking.", True),  # "good" lost
        ("greeting", "I see you called this morning, Northwind Telecom has your ticket.", False),
        # en_telecom v6 (held-out 13): "top" of the morning, "assistance", "when were you born"
        ("greeting", "Top of the morning to you, Northwind Telecom, Niamh here.", True),
        ("greeting", "Top of the morning to you, Southwind Telecom here.", False),
        ("anything_else", "Is there any other way I could be of assistance today?", True),
        ("anything_else", "Can you describe any other assistance you were given?", False),
        ("identity_check", "Right then, when were you born, what's the full date?", True),
        ("identity_check", "I see you were born in 1980.", False),
        ("identity_check", "When were you last on the phone to us?", False),
        # held-out 13 in audio: a politeness formula negates nothing; "say" asks like "tell";
        # "ask" is a request unless the agent tells what they will do
        ("identity_check", "I'll just need your date of birth first if you don't mind.", True),
        ("identity_check", "I don't need your date of birth, if you don't mind.", False),
        ("identity_check", "Can you say the date of birth again for me slowly?", True),
        ("identity_check", "Ask you for the account number. It's ten digits.", True),
        ("identity_check", "I'll ask about your date of birth later.", False),
        # held-out 14: g'day greets, "appreciate" thanks, a need the customer was hoping
        # for is asked; "have you had" asks about the past; "cheers, so" is no cheerio; a
        # negated act word of another phrase stands in for nothing
        ("greeting", "G'day, Northwind Telecom, Kylie here, what can I help you with?", True),
        ("greeting", "G'day mate, what can I help you with?", False),
        ("farewell", "I appreciate your time today, have a good evening, bye.", True),
        ("farewell", "I appreciate your patience, let me check that.", False),
        ("anything_else", "Was there anything else you were hoping to get sorted today?", True),
        ("anything_else", "Have you had anything else go wrong with the line this month?", False),
        ("anything_else", "Any other question you had for me?", True),
        ("farewell", "Cheers, so which router model do you have?", False),
        ("farewell", "Cheers, bye now.", True),
        ("farewell", "thanks for calling good buy", True),
        ("identity_check", "can you give me your a count number please", True),
        (
            "anything_else",
            "Anything else will need to be done through the app, I can't do it here.",
            False,
        ),
        ("anything_else", "Anything else I can do for you today?", True),
        # held-out 14 in audio (en_telecom v7, engine 11): tiny.en's "Good day" for g'day; a
        # request whose "can you" was lost ("just read me ..."), not a statement of what the
        # agent would do; "birthday" run on after "date of", not a birthday wished; "count
        # number" for "account number"; a short lead-in clause before a bare request; the
        # company's name said as the customer's thing names no company
        ("greeting", "Good day, Northwind Telecom, Kylie here.", True),
        ("identity_check", "Just read me the account number off the top of your bill.", True),
        ("identity_check", "Confirm your date of birth for me.", True),
        ("identity_check", "I'd share your date of birth only with us.", False),
        ("identity_check", "I'll read the account number back to you.", False),
        ("identity_check", "Could you give me your date of birthday month and year?", True),
        ("identity_check", "Happy birthday, can you confirm the date?", False),
        ("identity_check", "Count number handy? Could you read it out for me?", True),
        ("identity_check", "Okay, first things first, date of birth please?", True),
        ("identity_check", "Not today, date of birth please?", False),
        ("anything_else", "Got a router, anything else?", False),
        ("greeting", "Hi, I'm calling from Harbourline Energy about your Northwind bill.", False),
        ("greeting", "Hello, you're north wind telecom contract ends next month.", False),
        ("greeting", "Hello, you're through to Northwind Telecom.", True),
        ("farewell", "Thanks for calling, enjoy your day.", True),
        # held-out 13 in audio, rendered again: a need named ("that needs sorting"), not an
        # obligation; "take it easy" at the line's end closes; an imperative before a comma;
        # a key term's words in their order
        (
            "anything_else",
            "Is there anything else that needs sorting while you're through to me?",
            True,
        ),
        ("anything_else", "Anything else that needs to go through the app.", False),
        ("farewell", "Thanks heaps for calling mate, take it easy.", True),
        ("farewell", "Thanks for calling, it was easy to fix.", False),
        ("farewell", "Take it easy, mate.", False),
        ("identity_check", "Just read me, the account number off your latest bill.", True),
        ("identity_check", "And what's the mobile number on the account, love?", False),
        # held-out 15 (engine 12): one word is not two key words; "as an" is no "assist"; a
        # lost "good" before another part of the day; a request's tail clause of what the
        # agent will do; "mate" is a form of address
        ("farewell", "cheurio.", False),
        ("farewell", "Cheers, bye.", True),
        ("anything_else", "Anyone else you'd like added as an authorised user?", False),
        ("greeting", "Evening, Northwind, Josh speaking.", True),
        ("greeting", "Evening, Josh speaking.", False),
        ("identity_check", "And your date of birth, please, before I open the account?", True),
        ("identity_check", "Your postcode, please, before I open the account?", False),
        ("anything_else", "Anything else today, mate?", True),
        # held-out 16 (engine 13, en_telecom v8): howdy greets; a warm transfer's hello to a
        # colleague greets no customer; a request put off asks nothing now; a need under
        # "if" is a condition unless the line asks; "any other <thing> you'd like" asks
        # about the thing; a lead-in that says the work is done
        ("greeting", "Howdy, Northwind Telecom, this is Wade, how y'all doing today?", True),
        (
            "greeting",
            "Hi Priya, it's Callum on the Northwind Telecom help desk, can you take a transfer?",
            False,
        ),
        (
            "greeting",
            "Hi Mark, it's Tanya from Northwind Telecom's front line, I've got a customer for you.",
            False,
        ),
        (
            "greeting",
            "Hi, thanks for calling Northwind Telecom, can you take me through the problem?",
            True,
        ),
        ("identity_check", "We'll need your date of birth later if you decide to upgrade.", False),
        # the value read out to the caller asks for nothing (held-out 19)
        ("identity_check", "Your account number is 5 0 3 2 2 7 1 8, have you got a pen?", False),
        # (as the scored transcript has it: redacted; audio of held-out 19)
        ("identity_check", "Your account number is [ACCOUNT]. Have you got a pen?", False),
        # a mask is a value the agent read out, never the key word it is named after
        ("identity_check", "Thanks Mr [NAME], could you confirm [ACCOUNT] number please", False),
        ("identity_check", "What's your account number? It's 8 digits.", True),
        ("identity_check", "Lovely, and can I have your date of birth, please?", True),
        ("anything_else", "Would there be anything else today?", True),
        ("anything_else", "Is there anything else on your mind while I've got you?", True),
        ("anything_else", "before i let you go was there anything else you kneaded", True),
        ("identity_check", "We'll need your date of birth, then I can look at the upgrade.", True),
        ("anything_else", "If you need anything else, you can always use the live chat.", False),
        (
            "anything_else",
            "Happy to help with anything else if you need it, is there anything?",
            True,
        ),
        ("anything_else", "Is there any other number you'd like us to call you on?", False),
        ("anything_else", "Any other questions you had for me?", True),
        ("anything_else", "Okay, all done, was there anything else?", True),
        ("anything_else", "Got a router, anything else?", False),
        # held-out 16 in audio: one key word heard only as a misheard word ("move" for
        # "more") is no bare offer
        ("anything_else", "Move the ad on.", False),
        ("anything_else", "Anything more?", True),
        # an interjection first, its comma lost by ASR
        ("identity_check", "Lovely and your date of birth as well, please.", True),
        ("anything_else", "Router anything else?", False),
        ("anything_else", "OK, all done was there anything else.", True),
        ("anything_else", "Is anything else fixed?", False),
        ("farewell", "Thanks heaps for calling, mate, catch you later.", True),
        ("farewell", "Thanks, I'll call you back later.", False),
        ("farewell", "Later on we'll send the engineer, thanks.", False),
        # held-out 17 (engine 14): thanks sent to someone else thanks nobody; a lost "thank"
        # shown by more than "you"
        ("farewell", "Say thanks to the engineer when he comes, have a good day.", False),
        ("farewell", "I want to thank the team that fixed your line, have a good night.", False),
        ("farewell", "My thanks to the shop staff who sorted your SIM, take care.", False),
        ("farewell", "You take care of yourself, bye.", False),
        ("farewell", "You for calling, goodbye.", True),
        ("farewell", "Thanks heaps for calling, enjoy your Sunday.", True),
        ("farewell", "Thanks for calling, take care.", True),
        # the answer's form spelt out after a request (request_details)
        ("identity_check", "And your date of birth, please, day, month and year?", True),
        ("identity_check", "And when were you born, please, day, month and year?", True),
        ("identity_check", "Your date of birth, day, month and year, is on file.", False),
        # a hedge's "i" is no speaker who offers (speaker_hedges)
        (
            "anything_else",
            "Anything else beyond that discount would need a manager's approval, I'm afraid.",
            False,
        ),
        ("anything_else", "I'm afraid that's all, anything else I can do for you?", True),
        # held-out 18 (engine 15): a hedge heard through a slip; a need that is a statement's
        # subject; a statement's "you have it" asks nothing; a ripper of a day
        ("anything_else", "Anything else would need a new ticket, I'm araid.", False),
        ("anything_else", "Anything else you want will have to go through our sales team.", False),
        ("anything_else", "Anything else you want today?", True),
        ("anything_else", "Anything else you need while I've got you?", True),
        (
            "identity_check",
            "I'll put the account number in the email so you have it for reference.",
            False,
        ),
        ("identity_check", "and have you got your account number there", True),
        ("farewell", "Thanks heaps for your patience, have a ripper of a day, see ya.", True),
        ("farewell", "Have a ripper of a day.", False),
        # held-out 20 (engine 17): a condition on the key words asks for nothing; a need that
        # is a statement's subject a few words on; a whole clause of the work done before the
        # offer; a short clause addressing the customer; a synonym's sound-alike is no synonym
        (
            "identity_check",
            "If your date of birth is wrong on the account, we'll need a copy of your passport.",
            False,
        ),
        ("identity_check", "If your date of birth is handy, could you read it out?", True),
        ("identity_check", "If you could confirm your date of birth for me.", True),
        (
            "anything_else",
            "Anything else you want added will have to wait until the contract renews.",
            False,
        ),
        ("anything_else", "Anything else you want added to the order?", True),
        ("anything_else", "Lovely, that's the refund processed. Was there anything else?", True),
        ("anything_else", "Got a router, anything else?", False),
        (
            "anything_else",
            "Perfect, the direct debit's updated. Anything else today, Mr Kowalski?",
            True,
        ),
        ("identity_check", "And your date of birth as well, please, love?", True),
        # ... as tiny.en heard them, redacted (held-out 20 in audio)
        ("anything_else", "Lovely, that's the refund process. Was there anything else?", True),
        (
            "anything_else",
            "Perfect, the direct debit's updated. Anything else today, Mr. [NAME].",
            True,
        ),
        ("identity_check", "and your date of birth as well. Please love.", True),
        ("anything_else", "I love it, anything else?", False),
        ("greeting", "Northwind Telecom charges a fee four paper bills, I'm araid.", False),
        ("farewell", "I'll pass your thanks on to the engineer who came out.", False),
        ("farewell", "Thanks for letting me know, that explains the extra charge.", False),
        # the greeting's formula as a pattern (en_telecom v10)
        ("greeting", "Morning, you're through to Northwind broadband support, I'm Aisha.", True),
        ("greeting", "I'll put you through to Northwind billing now.", False),
        # held-out 21 (engine 18): "let you know" tells; "or else" is a conjunction; a need's
        # predicate and a request verb in another form heard through one slip
        (
            "identity_check",
            "Just to let you know, a new account number will be issued after the merge.",
            False,
        ),
        ("identity_check", "Let me know your account number and I'll look it up.", True),
        ("anything_else", "Or else you could wait for the contract to end in May.", False),
        ("anything_else", "Is there anything else?", True),
        (
            "anything_else",
            "Anything else you want to dispute woould have to go through a separate complaint.",
            False,
        ),
        ("identity_check", "Would you mind conforming your account number for me?", True),
        ("identity_check", "Would you mind informing us of a new account number?", False),
        # a greeting's "good" lost at the onset, the name heard split in two
        ("greeting", "morning north wind telecom this is pete speaking how can i help", True),
        ("greeting", "this morning north wind telecom had an outage", False),
        # held-out 21 in audio: an ellipsis asks, its "?" lost by tiny.en
        ("identity_check", "And your date of birth, MS-Linkfist.", True),
        ("identity_check", "And your date of birth.", True),
        ("identity_check", "And your date of birth is on file.", False),
        ("identity_check", "Your date of birth matches, Ms Lindqvist.", False),
        # held-out 22 (engine 18): a politeness formula's negation is no foreign word; "need"
        # asks with the speaker as its subject or none
        ("identity_check", "And your date of birth, if you don't mind?", True),
        (
            "identity_check",
            "Customers under 18 need a parent's date of birth on the contract.",
            False,
        ),
        (
            "identity_check",
            "You'll need your date of birth handy if you call the payments line.",
            False,
        ),
        ("identity_check", "We're going to need your account number first.", True),
        ("identity_check", "Mate, I jus need your date of birth to get into the account.", True),
        ("identity_check", "Just need your date of birth and we're off.", True),
        # held-out 22 in audio: a first name the ASR wrote is no sound-alike of a key word; a
        # greeting's lost "good" before the part of the day heard split in two
        (
            "identity_check",
            "Hey, Northwind Telecom. You're on with Brooke. What's up today?",
            False,
        ),
        ("identity_check", "And when were you borne, please?", True),
        ("greeting", "Hello, North When Telecom, how can I help?", True),
        ("greeting", "After noon, Northwind, Grant here, how can I help?", True),
        ("greeting", "After noon, we had an outage.", False),
        # held-out 23 (engine 19, en_telecom v11): "what" inside its clause is relative;
        # "which" right before the key words asks; a work-done lead-in with one slip and a
        # word split in two are no foreign words; "than" is no thanks; a birth asked about
        # is a date only with its "when"
        ("identity_check", "I can see the date of birth matches what's on the contract.", False),
        ("identity_check", "Okay, what's your date of birth", True),
        ("identity_check", "Which account number are you calling about today?", True),
        ("identity_check", "whiich acount number are you calling about today?", True),
        ("identity_check", "I'll check which account number the bill went to.", False),
        ("identity_check", "Can you tell me which town you were born in?", False),
        ("identity_check", "When were you born?", True),
        ("anything_else", "Right, that's all upated. Was there anything else?", True),
        ("anything_else", "any thing else at all, mr Petrovic?", True),
        ("anything_else", "Any thing else is plugged in?", False),
        ("farewell", "right than take care bye", False),
        ("farewell", "right thanks take care bye", True),
        # held-out 24 (engine 20): "that" after a preposition is no relative pronoun; a
        # hedge's last word heard split in two; a question about what someone else did; a
        # run of capitalised words that is no sound-alike of the company's name
        (
            "anything_else",
            "Anything else on top of that would need a new ticket, I'm afraid.",
            False,
        ),
        ("anything_else", "anything else would need a new ticket im a frayed", False),
        ("anything_else", "Anything else that needs sorting while you're through to me?", True),
        ("identity_check", "Did the engineer ask you for your account number?", False),
        ("identity_check", "Did they give you a date of birth for the account holder?", False),
        ("identity_check", "Okay, and can I have your account number?", True),
        ("greeting", "Hello, Northwood Energy, Maeve speaking, how can I help?", False),
        ("greeting", "Good afternoon, thanks for calling Northwood Telecom, Olu here.", False),
        ("greeting", "Thanks for calling Northwin Telecom, Sam here.", True),
        # held-out 23 in audio (engine 21): the lost thanks' intensifiers open the turn; "And"
        # heard "In" before an ellipsis; Mrs heard "misses" before a surname, comma unwritten
        ("farewell", "ever so much for your call. Have a smashing weekend. Bye.", True),
        ("farewell", "So much for the new router, it keeps dropping.", False),
        ("identity_check", "In your date of birth, my love.", True),
        ("identity_check", "In your date of birth, the year is wrong.", False),
        ("anything_else", "Anything else at all misses petrovic.", True),
        ("anything_else", "Got a router anything else mr", False),
        # held-out 25 (engine 22): a clause of thanks between a lost "good"'s part of the day
        # and the company's name; "their" is a function word
        (
            "greeting",
            "Morning, thanks for holding, Northwind Telecom, this is Fergus speaking, how can I help?",
            True,
        ),
        ("greeting", "Morning, thanks for holding, we had an outage at Northwind.", False),
        ("anything_else", "And is their anything else today?", True),
    ],
)
def test_en_telecom_lines(telecom, item: str, line: str, passed: bool) -> None:
    got, reason = verdict(telecom, item, line)
    assert got is passed, reason


@pytest.mark.parametrize(
    ("turns", "passed"),
    [
        # the warm transfer's hello cut by ASR from its question: the whole turn is skipped
        (
            [
                ("agent", "Hi Priya, it's Calum on the Northwind Telecom help desk."),
                ("agent", "Can you take a transfer?"),
                ("customer", "Sure."),
            ],
            False,
        ),
        # a transfer asked for in a later turn leaves the greeting of the first
        (
            [
                ("agent", "Hi, Northwind Telecom, Calum speaking."),
                ("customer", "Hi."),
                ("agent", "Can you take a transfer?"),
            ],
            True,
        ),
    ],
)
def test_an_unless_phrase_skips_its_whole_turn(telecom, turns, passed) -> None:
    t = Transcript(
        call_id="c",
        language="en",
        utterances=[
            Utterance(speaker=spk, start=3.0 * k, end=3.0 * k + 2.5, text=text)
            for k, (spk, text) in enumerate(turns)
        ],
    )
    (r,) = [r for r in check_items(t, telecom) if r.id == "greeting"]
    assert r.passed is passed, r.reason
    if not passed:
        assert "said to someone else" in r.reason


@pytest.mark.parametrize(
    ("word", "keys", "line", "positions"),
    [
        ("calling", {"thank", "calling", "northwind"}, "thanks for calling northwind", [3]),
        # another call, another object: not the phrase's act
        ("calling", {"thank", "calling"}, "thanks for calling back", []),
        ("calling", {"thank", "calling"}, "thanks for calling us back", []),
        ("calling", {"thank", "calling"}, "thanks for calling earlier", []),
        ("calling", {"thank", "calling", "northwind"}, "thanks for calling the helpline", []),
        # a determiner before a key word of the phrase; a follower in another clause
        ("calling", {"thank", "calling", "northwind"}, "thanks for calling the northwind", [3]),
        ("calling", {"thank", "calling"}, "thanks for calling the northwind desk", []),
        ("calling", {"thank", "calling"}, "thanks for calling, the fix is done", [3]),
        ("calling", {"thank", "calling"}, "thanks for ringing back", []),  # a synonym
        # thanks sent to someone else (written "thank you to the ...")
        ("thank", {"thank", "day"}, "say thanks to the engineer", []),
        ("thank", {"thank", "day"}, "i want to thank the team", []),
        ("thank", {"thank", "day"}, "thank you for your time", [0]),
        # "welcome": the act before "to" / "back", a key word, or its clause's end
        ("welcome", {"welcome", "northwind"}, "welcome to northwind", [0]),
        ("welcome", {"welcome", "northwind"}, "welcome northwind", [0]),
        ("welcome", {"welcome", "northwind"}, "hello and welcome, northwind", [2]),
        ("welcome", {"welcome", "northwind"}, "welcome", [0]),
        ("welcome", {"welcome", "northwind"}, "northwind's welcome offer", []),
    ],
)
def test_key_positions_drop_an_act_on_another_object(word, keys, line, positions) -> None:
    cfg = content_settings("en")
    assert key_positions(word, frozenset(keys), normalise(line, "en"), cfg) == positions


@pytest.mark.parametrize(
    ("phrase", "plain_text", "keys"),
    [
        ("thank you for calling [northwind] telecom", "thank you for calling northwind telecom",
         (("northwind",),)),
        ("can you confirm your [date of birth]", "can you confirm your date of birth",
         (("date", "birth"),)),  # "of" is not required: ASR swaps it
        ("is there anything else", "is there anything else", ()),
    ],
)  # fmt: skip
def test_key_terms(phrase: str, plain_text: str, keys) -> None:
    assert plain(phrase) == plain_text
    assert key_terms(phrase, "en") == keys


@pytest.mark.parametrize(
    ("word", "spoken", "heard"),
    [
        ("northwind", "northwin", True),
        ("northwind", "southwind", False),  # another company: ratio 78 < 80
        ("birth", "bath", True),  # same consonant skeleton (tiny.en)
        ("calling", "colin", True),
        ("read", "already", False),  # a slip keeps the length
        ("date", "dato", True),
        ("a", "i", False),
        ("else", "elue", True),  # one letter changed in a 4-letter word
        ("else", "ease", True),
        ("else", "lese", False),  # the first letter kept
        ("number", "numbr", True),  # 5+: one letter dropped ...
        ("account", "acocunt", True),  # ... or two swapped
        ("confirm", "confirming", True),  # another form of the word
        ("verify", "verified", True),
        ("northwind", "northbound", False),
        ("date", "update", False),  # a slip keeps the first sound
        ("help", "health", True),  # the last consonant sound changed (hlp / hl0)
        ("else", "elf", True),
        ("birth", "bird", True),
        ("calling", "coming", False),  # one changed before the last: another word
        ("help", "hello", False),
        ("help", "hold", False),  # another vowel: another word
        ("thank", "thing", False),
        ("great", "get", False),  # a short word that loses two letters is another word
        ("great", "grate", True),
        ("help", "hel", True),
        ("needed", "kneaded", True),  # a silent first letter
        ("kneaded", "needed", False),  # ... only where the line says it
    ],
)
def test_word_heard(word: str, spoken: str, heard: bool) -> None:
    cfg = content_settings("en")
    assert word_heard(word, spoken, cfg.key_min_ratio, cfg) is heard


def test_keys_negations_and_no_route_for_chinese() -> None:
    utt = normalise("thanks for calling north wind", "en")
    assert keys_heard((("northwind",),), utt, "en")
    assert not keys_heard((("acme",),), utt, "en")
    assert adds_negation("is there anything else", normalise("there isn't anything", "en"), "en")
    assert not adds_negation("i can not", normalise("i can't", "en"), "en")
    assert content_match(["请问还有别的需要吗"], normalise("还有别的需要吗", "zh"), "zh") is None
    # zh: bracketed key words must be said as written
    assert keys_heard((("华信",),), normalise("欢迎致电华信银行", "zh"), "zh")
    assert not keys_heard((("华信",),), normalise("欢迎致电招商银行", "zh"), "zh")


def test_the_default_paraphrase_policy_is_part_of_an_items_check_hash(telecom) -> None:
    """An English rubric runs with the default paraphrase policy: it decides verdicts, so
    it is hashed with each item (a changed default voids carried overrides); ``semantic:
    false`` and Chinese rubrics without a block hash as before (None)."""
    from pipeline.score.form import _semantic_part, item_check_sha256
    from pipeline.scripts_check import load_rubric

    default = load_rubric("en_telecom")
    assert _semantic_part(default) == {"default": {"model": "fast-use", "min_similarity": 0.8}}
    assert _semantic_part(telecom) is None  # semantic: false
    assert _semantic_part(load_rubric("zh_ecommerce")) is None
    item = next(i for _, i in default.items() if i.id == "greeting")
    assert item_check_sha256(default, item) != item_check_sha256(telecom, item)


def test_an_aligned_phrase_may_lose_half_of_a_multi_word_key_never_a_name(telecom) -> None:
    """tiny.en dropped "number" from the sample call c04 ("May I have your account,
    please."): the whole phrase aligns at 0.86 and one word of [account number] is heard.
    A one-word key (the company's name) may never be lost."""
    assert verdict(telecom, "identity_check", "May I have your account, please.")[0] is True
    # the same after another sentence (c04 on an Intel CPU): "have" is that phrase's only
    # act word, weak or not; a line that says "have" of something else still fails
    for line, passed in [
        ("I am sorry to hear that. May I have your account, please.", True),
        ("I am sorry to hear that, may I have your account, please?", True),
        ("Thanks for calling back, I have your notes here.", False),
        ("I have your account open on my screen now.", False),
    ]:
        assert verdict(telecom, "identity_check", line)[0] is passed, line
    assert verdict(telecom, "greeting", "Thank you for calling telecom.")[0] is False
    utt = normalise("may i have your account please", "en")
    assert keys_heard((("account", "number"),), utt, "en", aligned=True)
    assert not keys_heard((("account", "number"),), utt, "en")


def test_key_words_found_from_the_phrase_set() -> None:
    """Without brackets: the content words every phrase of the set says (not act words of
    a synonym group), numbers, and names written capitalised are key words."""
    greet = ("thank you for calling northwind telecom", "welcome to northwind telecom")
    assert derived_keys(greet[0], greet, "en") == ("northwind", "telecom")
    assert derived_keys(greet[1], greet, "en") == ("northwind", "telecom")
    # one phrase: nothing in common to find, but a name and a number are still keys
    one = ("Thank you for calling Acme, press 2 for billing",)
    assert derived_keys(one[0], one, "en") == ("acme", "2")
    # thank / thanks and calling / call are act words said for one another: the
    # content-word route weighs them, they are not keys
    bye = ("thank you for calling have a great day", "thanks for calling goodbye")
    assert derived_keys(bye[0], bye, "en") == ()
    # a bracket and a found key: each once
    marked = ("thank you for calling [northwind]", "welcome to northwind")
    assert phrase_keys(marked[0], marked, "en") == (("northwind",),)
    assert phrase_keys(marked[1], marked, "en") == (("northwind",),)
    assert derived_keys("欢迎致电", ("欢迎致电", "您好"), "zh") == ()


def test_another_companys_name_fails_a_rubric_without_brackets() -> None:
    phrases = ["thank you for calling northwind telecom", "welcome to northwind telecom"]
    r = parse_rubric(
        {
            "id": "t",
            "version": 1,
            "language": "en",
            "title": "t",
            "sections": [
                {
                    "id": "s",
                    "title": "s",
                    "items": [{"id": "g", "title": "g", "points": 10,
                               "check": {"required": {"phrases": phrases}}}],
                }
            ],
        },
        path="rubrics/t.yaml",
    )  # fmt: skip
    assert verdict(r, "g", "Thank you for calling Northwind Telecom, this is Ana.")[0] is True
    assert verdict(r, "g", "Thanks for calling north wind telecom.")[0] is True
    got, reason = verdict(r, "g", "Thank you for calling Eastwind Telecom, this is Ana.")
    assert got is False, reason
    # the reason says why a close line failed: the key word, not a similarity below the bar
    assert ">= 0.75" in reason and "key word(s) of" in reason, reason
    assert reason.endswith("not heard: northwind"), reason


def test_a_check_of_requests_needs_a_request() -> None:
    asks = ["can you confirm your [date of birth]", "may i have your [account number]"]
    said = [
        "What's your date of birth?",
        "your date of birth please",
        "can i take your account number",
    ]
    told = [
        "I've noted your account number",
        "your date of birth is verified",
        "i can see your account number on screen",  # a modal after a subject states
        "we could update your date of birth",
    ]
    for line in said:
        assert act_mood_ok(asks, normalise(line, "en"), "en"), line
    for line in told:
        assert not act_mood_ok(asks, normalise(line, "en"), "en"), line
        assert content_match(asks, normalise(line, "en"), "en") is None, line
    # a set with a phrase that is no request ("thank you for calling") asks nothing of a line
    assert act_mood_ok(["thank you for calling [northwind]"], normalise("northwind", "en"), "en")


def test_a_check_of_offers_needs_the_agent_to_offer() -> None:
    """Every phrase offers the speaker's own act ("i can help"): a line passed in other
    words must name the speaker as who acts or ask what the customer needs."""
    offers = ["is there anything [else] i can help you with", "anything [else] i can do for you"]
    offered = [  # (the phrases are questions too: "?" keeps these lines questions)
        "anything else we can sort out?",
        "is there anything else you need from me?",
        "anything else ya needed?",
        "anything else you would like?",
    ]
    not_offered = [
        "can you do anything else with the router for me?",
        "do you have anything else plugged in?",
        "anything else, you will need to take it to a store?",
        "for anything else you need to call sales?",
    ]
    for line in offered:
        assert act_mood_ok(offers, normalise(line, "en"), "en"), line
    for line in not_offered:
        assert not act_mood_ok(offers, normalise(line, "en"), "en"), line
        assert content_match(offers, normalise(line, "en"), "en") is None, line
    # a set with a phrase no speaker says ("can you confirm") is not a set of offers
    mixed = ["can you confirm your [date of birth]", "may i have your [date of birth]"]
    assert act_mood_ok(mixed, normalise("can you give me your date of birth", "en"), "en")


def test_the_aligned_route_needs_an_act_word_of_the_phrase(telecom) -> None:
    """ "thanks for calling" aligns 0.80 with "thanks for calling goodbye" but says no
    goodbye: the words around the act are not it; a synonym or "take care" is."""
    for line in ["Thanks for calling earlier, did the reset work?", "thanks for calling lets see"]:
        passed, why = verdict(telecom, "farewell", line)
        assert passed is False, (line, why)
    for line in [
        "Thanks for calling, bye.",
        "thanks for calling by",
        "Thanks for calling, take care.",
    ]:
        passed, why = verdict(telecom, "farewell", line)
        assert passed is True, (line, why)
    # a phrase without act words (all key words) is aligned as before
    assert verdict(telecom, "greeting", "thank you for calling northwind")[0] is True
    phrases = ["[thanks] for [calling] goodbye"]
    assert act_word_heard(phrases[0], phrases, normalise("thanks for calling bye", "en"), "en")
    assert not act_word_heard(
        phrases[0], phrases, normalise("thanks for calling lets see", "en"), "en"
    )
    # a line that says nothing but the phrase's own words is the phrase shortened, not words
    # around another act: the sample calls close "Thank you for calling." (c03, c04), and
    # reviewers pass that farewell
    assert act_word_heard(phrases[0], phrases, normalise("thanks for calling", "en"), "en")
    assert verdict(telecom, "farewell", "Thank you for calling.")[0] is True


def test_an_apostrophe_lost_by_asr_still_negates(telecom) -> None:
    assert verdict(telecom, "anything_else", "i cant do anything else for you today")[0] is False


@pytest.mark.parametrize(
    ("line", "passed"),
    [
        # the key words in a clause of the agent's own act are not asked for (with the
        # shipped paraphrase fallback: "could you hold on while i find your account number"
        # is 0.80 like "may i have your account number please"; dev3, Kokoro through tiny.en)
        ("Could you hold on while I find your account number?", False),
        ("Could you wait while we check your date of birth?", False),
        ("Once we have your date of birth, could you read me the meter?", False),
        # ... but the request itself may come first, or after the clause ends
        ("Could I take your account number while I pull up the file?", True),
        ("While I have you, could you confirm your date of birth?", True),
        ("Bear with me while I look, could you confirm your date of birth?", True),
        # "let me" and what the agent does to the key words: no request (held-out 13 in
        # audio), unless something else asks, or "let me" asks for them ("let me have")
        ("Let me just find your account number on the system.", False),
        ("Let me pull up your account number.", False),
        ("Lets quickly look up your date of birth.", False),
        ("Let me find your account number, what's your date of birth?", True),
        ("let me find your account number what is your date of birth", True),
        ("Let me just look up your account, can you confirm your date of birth?", True),
        ("Can you let me know your date of birth?", True),
        ("Let me have your account number, please.", True),
        ("Let me juit look up your account number on the syste.", False),  # a slip between
        ("Let me have a look at your account number.", False),
        ("Let me take a look at your date of birth.", False),
        ("Let me take your date of birth, please.", True),
    ],
)
def test_key_words_in_a_clause_of_the_agents_own_act_are_not_asked_for(line, passed) -> None:
    rubric = parse_rubric(read_yaml(resolve_rubric_path("en_telecom"))[0], path="en_telecom")
    got, reason = verdict(rubric, "identity_check", line)
    assert got is passed, reason
