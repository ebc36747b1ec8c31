"""Tests for mailsim.spelling, against the real enchant library and hunspell dictionaries.

Each "ignored" case is paired with a control showing the same word *is* flagged when it
stands in prose, so a test cannot pass just because nothing gets checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import enchant.tokenize
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mailsim_runtime.mail import MailRequest, MailResponse
from mailsim_runtime.view import Views

from mailsim.spelling import (
    Finding,
    SpellChecker,
    SpellingError,
    SpellingSetupError,
    _tokenize_english,
    _tokenizer_for,
    assert_spelled_correctly,
    kind_for,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "spelling"
APP = DATA / "app"
CLEAN = DATA / "clean"
WORDS = DATA / "words.txt"


@pytest.fixture(scope="module")
def checker() -> SpellChecker:
    return SpellChecker("en_US")


@pytest.fixture(scope="module")
def project_checker() -> SpellChecker:
    return SpellChecker("en_US", word_file=WORDS)


def words(findings: list[Finding]) -> list[str]:
    return [finding.word for finding in findings]


def where(findings: list[Finding]) -> list[tuple[str, int, int]]:
    return [(finding.word, finding.line, finding.column) for finding in findings]


def column_of(path: Path, line: int, word: str) -> int:
    return path.read_text(encoding="utf-8").split("\n")[line - 1].index(word) + 1


# Templates -------------------------------------------------------------------------


def test_a_misspelled_template_word_is_reported_at_its_line_with_the_right_suggestion_first(
    checker: SpellChecker,
) -> None:
    path = APP / "welcome.txt"
    findings = checker.check_template(path)
    # Lines 9 and 21 come after a multi-line {% if %}, a {% for %} loop and an
    # indented code block: their numbers are those of the original file.
    assert where(findings) == [
        ("recieve", 9, column_of(path, 9, "recieve")),
        ("definately", 21, 4),
    ]
    assert {finding.file for finding in findings} == {str(path)}
    assert findings[0].suggestions[0] == "receive"
    assert findings[1].suggestions[0] == "definitely"
    assert str(findings[0]).startswith(f"{path}:9: recieve → receive, ")


def test_a_template_found_through_views_is_checked_the_same(checker: SpellChecker) -> None:
    views = Views([APP])
    assert checker.check_template("welcome.txt", views) == checker.check_template(
        APP / "welcome.txt"
    )


@pytest.mark.parametrize(
    "template",
    [
        "Hello {{ frend }}!",
        'Hello {{ "dear frend" | title }}!',
        "Hello {# frend #}!",
        "{% if frend %}Hello!{% endif %}",
        "{% set greeting = 'frend %} or }}' %}Hello!",
        "{% if user\n      and frend\n      and not nobdy %}\nHello!\n{% endif %}",
        "{#\n  a frend,\n  nobdy\n#}Hello!",
    ],
)
def test_jinja_syntax_is_ignored_in_templates(checker: SpellChecker, template: str) -> None:
    assert checker.check_text(template, kind="template") == []
    # The control: read as plain text, the same words are flagged.
    assert "frend" in words(checker.check_text(template, kind="text"))


def test_line_numbers_stay_right_after_a_multi_line_jinja_block(checker: SpellChecker) -> None:
    template = "{% if user\n   and frend %}\nDear friend,\n{# one\ntwo #}  we recieve it\n"
    assert where(checker.check_text(template, kind="template")) == [("recieve", 5, 12)]


@pytest.mark.parametrize(
    "text",
    [
        "See https://example.com/hlp/recieve?q=frend now.",
        "See http://exmple.org now.",
        "See ftp://files.exmple.org/pub now.",
        "See (www.exmple.org/hlp) now.",
        "Write to mailto:hlp@example.com now.",
        "Write to hlp@exmple.com, now.",
        "Write to <hlp.frend@exmple.com> now.",
        "Write to Hlp Frend <hlp@exmple.com> now.",
    ],
)
def test_urls_and_addresses_are_ignored(checker: SpellChecker, text: str) -> None:
    prose = "Hlp Frend" if "Hlp Frend" in text else ""
    assert words(checker.check_text(text)) == prose.split()
    assert words(checker.check_text("See hlp or exmple now.")) == ["hlp", "exmple"]


def test_link_text_before_a_url_is_prose(checker: SpellChecker) -> None:
    text = "Please [recieve the docs](https://exmple.com/hlp) (https://exmple.com/)."
    assert words(checker.check_text(text, kind="template")) == ["recieve"]


@pytest.mark.parametrize(
    "text",
    [
        "Call `sendr()` or ``smtp sendr`` first.",
        "Call smtp_sendr first.",
        "Call sendMesage or SMTPSendr first.",
        "Edit mailsm.tmol or /etc/mailsm/confg first.",
        "Call sendr() first, then Sendr::run and {sendr}.",
        "Run it 2nd with version3 first.",
        "Run this first:\n\n    $ mailsm sendr --tpo\n\tsendr\n\nand go.",
        "Run this first:\n\n```\nmailsm sendr\n```\nand go.",
    ],
)
def test_code_is_ignored(checker: SpellChecker, text: str) -> None:
    assert checker.check_text(text) == []
    assert words(checker.check_text("Call sendr then mailsm.")) == ["sendr", "mailsm"]


def test_indentation_without_a_blank_line_before_it_is_prose(checker: SpellChecker) -> None:
    # A wrapped, indented continuation line (or a line inside a {% for %} loop) is
    # not a code block.
    text = "{% for item in items %}\n    You will recieve {{ item }}\n{% endfor %}\n"
    assert where(checker.check_text(text, kind="template")) == [("recieve", 2, 14)]


def test_short_acronyms_pass_and_longer_capitals_are_checked(checker: SpellChecker) -> None:
    assert checker.check_text("Our SMTP and IMAP servers speak HTML, see the FAQ's.") == []
    assert words(checker.check_text("IMPORTANT NOTISE")) == ["NOTISE"]
    assert words(checker.check_text("Smtp is fine, SMTPX too")) == ["Smtp"]


def test_contractions_pass(checker: SpellChecker) -> None:
    typographic = "you\u2019re, doesn\u2019t"
    text = f"Don't worry: you're in, it's done, we'll write, it isn't, {typographic}."
    assert checker.check_text(text) == []
    assert words(checker.check_text("it doesnt")) == ["doesnt"]


def test_html_templates_check_only_the_text(checker: SpellChecker) -> None:
    path = APP / "confirm.html"
    findings = checker.check_template(path)
    assert where(findings) == [
        ("plese", 3, column_of(path, 3, "plese")),
        ("recieve", 10, column_of(path, 10, "recieve")),
    ]
    # The control: as plain text, the style, the comment and the <pre> are prose.
    as_text = words(checker.check_text(path.read_text(encoding="utf-8"), kind="template"))
    assert {"Helvetca", "commment", "sned"} <= set(as_text)


def test_html_entities_join_words_and_tags_separate_them(checker: SpellChecker) -> None:
    html = "<p>Fish &amp; chips,\nit doesn&rsquo;t&#x20;<b>recieve</b>&nbsp;it&#39;s&hellip;</p>"
    assert where(checker.check_text(html, kind="html")) == [("recieve", 2, 26)]
    assert where(checker.check_text("<p>one</p><p>recieve</p>", kind="html")) == [
        ("recieve", 1, 14)
    ]
    # An entity nobody knows is not prose either.
    assert checker.check_text("<p>&frend; and <code>frend</code></p>", kind="html") == []


def test_kind_follows_the_file_name() -> None:
    assert kind_for("welcome.txt") == "template"
    assert kind_for("confirm.html") == "html-template"
    assert kind_for("lists/confirm.HTM.j2") == "html-template"
    assert kind_for("notes.md.jinja") == "template"


def test_every_template_of_a_folder_or_views_is_checked(project_checker: SpellChecker) -> None:
    findings = project_checker.check_templates(APP)
    assert [(Path(f.file).name, f.line, f.word) for f in findings] == [
        ("confirm.html", 3, "plese"),
        ("confirm.html", 10, "recieve"),
        ("welcome.txt", 9, "recieve"),
        ("welcome.txt", 21, "definately"),
    ]
    assert project_checker.check_templates(Views([APP])) == findings
    assert project_checker.check_templates([str(APP)]) == findings


def test_a_missing_template_folder_is_an_error(checker: SpellChecker, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        checker.check_templates(tmp_path / "nowhere")


def test_clean_realistic_templates_pass(project_checker: SpellChecker) -> None:
    assert project_checker.check_templates(CLEAN) == []


def test_clean_templates_are_really_read(checker: SpellChecker) -> None:
    # Without the project's words, their words are flagged: the pass above is earned.
    found = set(words(checker.check_templates(CLEAN)))
    assert found == {"mailsim", "Lamson"}


# The word list ---------------------------------------------------------------------


def test_the_word_list_accepts_project_words(
    checker: SpellChecker, project_checker: SpellChecker
) -> None:
    text = "mailsim, Mailsim and MAILSIM follow Lamson (LAMSON); Lamson's ideas."
    assert project_checker.check_text(text) == []
    # Capitals longer than an acronym are words too.
    flagged = {"mailsim", "Mailsim", "MAILSIM", "Lamson", "LAMSON", "Lamson's"}
    assert set(words(checker.check_text(text))) == flagged


def test_capitalised_project_words_keep_their_case(project_checker: SpellChecker) -> None:
    findings = project_checker.check_text("ask lamson")
    assert words(findings) == ["lamson"]
    assert findings[0].suggestions[0] == "Lamson"
    assert project_checker.check_text("mailsm")[0].suggestions[0] == "mailsim"


def test_comments_in_the_word_list_are_ignored(project_checker: SpellChecker) -> None:
    # "xyzzy" is on a commented-out line; "ancestor" only in a trailing comment.
    assert words(project_checker.check_text("xyzzy")) == ["xyzzy"]


def test_words_can_be_given_directly() -> None:
    findings = SpellChecker(words=["sendr", "Frend"]).check_text("sendr SENDR Frend frend")
    assert where(findings) == [("frend", 1, 19)]
    assert findings[0].suggestions[0] == "Frend"


def test_a_word_list_entry_with_spaces_is_an_error_naming_its_line(tmp_path: Path) -> None:
    word_file = tmp_path / "words.txt"
    word_file.write_text("# ours\nmailsim\nmail sim\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"words\.txt:3: one word per entry"):
        SpellChecker(word_file=word_file)


# Messages --------------------------------------------------------------------------


def misspelled_response() -> MailResponse:
    return MailResponse(
        to="ada@example.org",
        from_="list@example.com",
        subject="Your weekly digset",
        body="Hello Ada,\n\nHere is your digest.\nThe mesage count is 3.\n",
        html="<p>Hello Ada,</p>\n<p>Another <b>mistaek</b>.</p>",
        headers={"Message-ID": "<d1@example.com>"},
    )


def test_a_message_is_checked_in_its_subject_and_both_bodies(checker: SpellChecker) -> None:
    findings = checker.check_message(misspelled_response())
    label = "message <d1@example.com>"
    assert [(f.file, f.line, f.word) for f in findings] == [
        (f"{label} subject", 1, "digset"),
        (f"{label} body", 4, "mesage"),
        (f"{label} html", 2, "mistaek"),
    ]
    assert findings[0].suggestions[0] == "digest"


def test_a_received_message_is_checked_the_same(checker: SpellChecker) -> None:
    expected = where(checker.check_message(misspelled_response()))
    wire = misspelled_response().as_bytes()
    assert where(checker.check_message(wire)) == expected
    request = MailRequest("127.0.0.1", "list@example.com", "ada@example.org", wire)
    assert where(checker.check_message(request)) == expected


def test_an_html_only_message_is_checked_once(checker: SpellChecker) -> None:
    # MailRequest.body() falls back to the HTML part; it must not be read twice.
    response = MailResponse(to="a@example.org", subject="Hello", html="<p>A mistaek here.</p>")
    assert words(checker.check_message(response)) == ["mistaek"]
    assert words(checker.check_message(response.as_bytes())) == ["mistaek"]


# Assertions ------------------------------------------------------------------------


def test_assert_spelled_correctly_lists_the_findings(checker: SpellChecker) -> None:
    path = APP / "welcome.txt"
    with pytest.raises(SpellingError) as raised:
        assert_spelled_correctly(checker.check_template(path))
    assert isinstance(raised.value, AssertionError)
    lines = str(raised.value).splitlines()
    assert lines[0].startswith("2 misspelled words")
    assert lines[1].startswith(f"{path}:9: recieve → receive, ")
    assert lines[2].startswith(f"{path}:21: definately → definitely")
    assert len(raised.value.findings) == 2


def test_assert_spelled_correctly_passes_on_clean_input(checker: SpellChecker) -> None:
    assert_spelled_correctly([])
    assert_spelled_correctly(checker.check_text("All is well, thank you."))


def test_a_finding_without_suggestions_says_so() -> None:
    assert str(Finding("a.txt", 2, 1, "zzzq", ())) == "a.txt:2: zzzq → (no suggestions)"


# Tokenizing: the fast English tokenizer against enchant's own ---------------------

ENCHANT_ENGLISH = enchant.tokenize.get_tokenizer(
    "en", filters=[enchant.tokenize.URLFilter, enchant.tokenize.EmailFilter]
)


def enchant_tokens(text: str) -> list[tuple[str, int]]:
    return list(ENCHANT_ENGLISH(text))


def fast_tokens(text: str) -> list[tuple[str, int]]:
    return list(_tokenize_english(text))


# Whitespace as str.isspace() sees it (incl. \x1c-\x1f, NEL, NBSP, ideographic space),
# and characters that look like it but are not (zero-width space, BOM, Mongolian vowel
# separator).
WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2003\u2028\u2029\u202f\u3000"
NOT_WHITESPACE = "\u200b\ufeff\u180e"
# Letters, digits, the apostrophe and what enchant strips from either end of a chunk,
# URL and address punctuation, non-ASCII letters, combining marks (U+0301, U+0308,
# U+20DD), the typographic apostrophe, and non-ASCII digits and numbers (not letters).
TRICKY = (
    "abzAZ09'\"`([]).!,?;:/@._-"
    + WHITESPACE
    + NOT_WHITESPACE
    + "éßΩяǅʰ中\u0301\u0308\u20dd\u2019½²٣"
)
pieces = st.one_of(
    st.text(alphabet=TRICKY, max_size=12),
    st.sampled_from(WHITESPACE),
    st.from_regex(r"[(\"'`]?[a-zA-Z]{1,4}:/{0,3}[a-z.'@]{0,6}[).,'\"]?", fullmatch=True),
    st.from_regex(r"[(\"'`]?[a-z.']{0,4}@[a-z.]{0,5}\.[a-zA-Z]{1,3}[).,'\"]?", fullmatch=True),
    st.sampled_from(["http://", "mailto:", "www.", "@", "'", "''", "don't", "x@y.org"]),
    st.text(max_size=6),  # anything at all
)


@settings(max_examples=1000)
@given(st.lists(pieces, max_size=12).map("".join))
def test_the_fast_tokenizer_finds_exactly_what_enchant_finds(text: str) -> None:
    assert fast_tokens(text) == enchant_tokens(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("don't", [("don't", 0)]),
        ("'quoted' (words), [here]!", [("quoted", 1), ("words", 10), ("here", 19)]),
        ("rock'n'roll", [("rock'n'roll", 0)]),
        ("abc123def", [("abc", 0), ("def", 6)]),
        ("the dogs'' bones", [("the", 0), ("dogs", 4), ("bones", 11)]),
        ("a '' b ''' ( ) ' c", [("a", 0), ("b", 5), ("c", 17)]),
        ("see http://example.com/x, or (https://a.b).", [("see", 0), ("or", 26)]),
        ("ftp:// x", [("ftp", 0), ("x", 7)]),  # nothing after "//": not a URL
        ("mail bob@example.org. or", [("mail", 0), ("or", 22)]),
        # enchant strips no "<" or ">", so this is no address to it (_not_prose() masks it).
        ("<bob@example.org>", [("bob", 1), ("example", 5), ("org", 13)]),
        ("bob@example.COM", [("bob", 0), ("example", 4), ("COM", 12)]),
        ("café naïve Straße", [("café", 0), ("naïve", 5), ("Straße", 11)]),
        ("cafe\u0301 \u0301x", [("cafe\u0301", 0), ("x", 7)]),
        ("a\xa0b\u200bc", [("a", 0), ("b", 2), ("c", 4)]),
        ("it\u2019s", [("it", 0), ("s", 3)]),
    ],
)
def test_tokenizer_examples(text: str, expected: list[tuple[str, int]]) -> None:
    assert enchant_tokens(text) == expected
    assert fast_tokens(text) == expected


def test_english_and_unknown_languages_get_the_fast_tokenizer_german_gets_enchants() -> None:
    for language in ("en", "en_US", "en-GB", "fr_FR"):  # enchant splits French as English
        assert _tokenizer_for(language) is _tokenize_english
    german = _tokenizer_for("de_DE")
    assert german is not _tokenize_english
    # German joins words at "-" and "." but not at "'".
    assert list(german("E-Mail z.B. don't")) == [
        ("E-Mail", 0),
        ("z.B", 7),
        ("don", 12),
        ("t", 16),
    ]


# Setup -----------------------------------------------------------------------------


def test_the_language_decides_the_dictionary() -> None:
    assert SpellChecker("en_GB").check_text("The colour of our behaviour.") == []
    assert words(SpellChecker("en_US").check_text("The colour of our behaviour.")) == [
        "colour",
        "behaviour",
    ]


def test_a_wrong_language_code_is_a_clear_error() -> None:
    with pytest.raises(SpellingSetupError) as raised:
        SpellChecker("xx_XX")
    message = str(raised.value)
    for expected in ("'xx_XX'", "en_US", "libenchant-2-2", "hunspell-en-us"):
        assert expected in message


def test_a_missing_enchant_library_is_a_clear_error(tmp_path: Path) -> None:
    # A fresh interpreter, pointed at a "library" that is not one: the real failure,
    # no mock. (In this process enchant is already loaded.)
    not_a_library = tmp_path / "libenchant-2.so"
    not_a_library.write_text("not a shared object\n", encoding="utf-8")
    script = "from mailsim.spelling import SpellChecker\nSpellChecker()\n"
    env = {**os.environ, "PYENCHANT_LIBRARY_PATH": str(not_a_library)}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("mailsim.spelling.SpellingSetupError: pyenchant cannot load")
    assert "libenchant-2-2" in last_line
    assert "hunspell-en-us" in last_line
