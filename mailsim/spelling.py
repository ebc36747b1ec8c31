"""Spell checking of mail templates and rendered messages, with pyenchant.

A :class:`SpellChecker` reads Jinja templates (text or HTML) and rendered messages and
reports each misspelled word as a :class:`Finding` at its line and column in the
original text. What is not prose is ignored: Jinja syntax, HTML markup, URLs, mail
addresses, code (backtick spans, indented and fenced blocks, identifiers) and short
acronyms. Ignored spans are blanked rather than removed, so positions stay exact.
Project words (the application's name, people, jargon) come from a word list::

    checker = SpellChecker(word_file="app/words.txt")
    assert_spelled_correctly(checker.check_templates(Views(["app/templates"])))
"""

from __future__ import annotations

import bisect
import difflib
import html
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal, get_args

from mailsim_runtime.mail import MailRequest, MailResponse
from mailsim_runtime.view import Views

__all__ = [
    "TEMPLATE_SUFFIXES",
    "Finding",
    "Kind",
    "SpellChecker",
    "SpellingError",
    "SpellingSetupError",
    "assert_spelled_correctly",
    "kind_for",
]

#: What a text is: plain text, HTML, or a Jinja template of either.
Kind = Literal["text", "html", "template", "html-template"]

#: The file names :meth:`SpellChecker.check_templates` treats as templates.
TEMPLATE_SUFFIXES = frozenset(
    {".txt", ".text", ".html", ".htm", ".j2", ".jinja", ".jinja2", ".md", ".eml", ".msg"}
)
_HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
_JINJA_SUFFIXES = frozenset({".j2", ".jinja", ".jinja2"})

_INSTALL_HINT = (
    "on Debian or Ubuntu install the packages libenchant-2-2 and a dictionary "
    "such as hunspell-en-us (apt-get install libenchant-2-2 hunspell-en-us)"
)

# Jinja comments, statements and expressions, across lines. Quoted strings are skipped
# whole so that a "%}" or "}}" inside one does not end the tag early.
_JINJA = re.compile(
    r"""\{\#.*?\#\}
      | \{%(?:'[^']*'|"[^"]*"|[^'"])*?%\}
      | \{\{(?:'[^']*'|"[^"]*"|[^'"])*?\}\}""",
    re.DOTALL | re.VERBOSE,
)
_FENCE = re.compile(r" {0,3}(```|~~~)")
_BACKTICKS = re.compile(r"(`+)[^`\n]*?\1")
_CHUNK = re.compile(r"\S+")
_URL = re.compile(r"(?i)\b(?:[a-z][\w+.-]*://|mailto:|www\.)")
# A whitespace-separated chunk holding any of these is an address or code, not prose.
_NOT_PROSE = re.compile(
    r"""\S@ | @\S                                       # addresses, @handles
      | [_\d=\\{}$%|<>]                                # identifiers, numbers, operators, tags
      | [a-z][A-Z] | [A-Z]{2,}[a-z]                      # camelCase, HTTPServer, URLs
      | [A-Za-z]{2,}\.[A-Za-z] | [A-Za-z]\.[A-Za-z]{2,}  # views.py, example.com (not e.g.)
      | :: | \w\( | ^[~.]{0,2}/ | /\S*/                  # Class::method, call(), paths""",
    re.VERBOSE,
)
# HTML elements whose text a reader does not see, or sees as code.
_HIDDEN_ELEMENTS = frozenset({"script", "style", "code", "pre", "kbd", "samp", "template"})


@dataclass(frozen=True)
class Finding:
    """One misspelled word: where it is (1-based line and column) and what might be meant."""

    file: str
    line: int
    column: int
    word: str
    suggestions: tuple[str, ...]

    def __str__(self) -> str:
        suggested = ", ".join(self.suggestions) or "(no suggestions)"
        return f"{self.file}:{self.line}: {self.word} → {suggested}"


class SpellingError(AssertionError):
    """Misspelled words were found; the message lists them, one per line."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = tuple(findings)
        plural = "" if len(self.findings) == 1 else "s"
        header = f"{len(self.findings)} misspelled word{plural} (or missing from the word list):"
        super().__init__("\n".join([header, *map(str, self.findings)]))


class SpellingSetupError(RuntimeError):
    """The enchant C library or the dictionary for the language is not installed."""


def assert_spelled_correctly(findings: Sequence[Finding]) -> None:
    """Raise :class:`SpellingError` listing *findings*, if there are any."""
    if findings:
        raise SpellingError(findings)


def kind_for(name: str | Path) -> Kind:
    """The kind of template file *name* is: ``html-template`` for ``x.html`` or ``x.html.j2``."""
    suffixes = [suffix.lower() for suffix in Path(name).suffixes]
    if suffixes and suffixes[-1] in _JINJA_SUFFIXES:
        suffixes.pop()
    return "html-template" if suffixes and suffixes[-1] in _HTML_SUFFIXES else "template"


class SpellChecker:
    """Checks text in one language against its dictionary plus the project's words.

    *words* and the lines of *word_file* (one word per line, ``#`` starts a comment)
    are accepted on top of the dictionary: a word written in lower case in any case,
    a capitalised one (``Lamson``) only as written or in capitals. Raises
    :class:`SpellingSetupError` when enchant or the dictionary is missing.
    """

    def __init__(
        self,
        language: str = "en_US",
        *,
        words: Iterable[str] = (),
        word_file: str | Path | None = None,
        max_suggestions: int = 3,
    ) -> None:
        if not language.strip():
            raise ValueError("language must be a dictionary tag such as 'en_US'")
        try:
            import enchant
            import enchant.tokenize
        # The C library may be absent (ImportError), unloadable (OSError), or named by a
        # PYENCHANT_LIBRARY_PATH that does not exist (pyenchant asserts on that).
        except (ImportError, OSError, AssertionError) as error:
            raise SpellingSetupError(
                f"pyenchant cannot load the enchant C library ({error}); {_INSTALL_HINT}"
            ) from error
        try:
            self._dict: Any = enchant.Dict(language)
        except enchant.errors.DictNotFoundError as error:
            installed = ", ".join(sorted(enchant.list_languages())) or "none"
            raise SpellingSetupError(
                f"no spelling dictionary for language {language!r} "
                f"(installed: {installed}); {_INSTALL_HINT}"
            ) from error
        self._tokenizer = _tokenizer_for(language)
        self.language = language
        self.max_suggestions = max_suggestions
        entries = [(word, "words") for word in words]
        if word_file is not None:
            entries += _read_word_file(Path(word_file))
        self._any_case: set[str] = set()  # lower-case entries: any case passes
        self._exact: set[str] = set()  # capitalised ones: as written, or in capitals
        for entry, where in entries:
            word = entry.strip().replace("\u2019", "'")
            if not word or any(char.isspace() for char in word):
                raise ValueError(f"{where}: one word per entry, got {word!r}")
            if word.islower():
                self._any_case.add(word)
            else:
                self._exact.update((word, word.upper()))
        self._suggestions: dict[str, tuple[str, ...]] = {}

    # Checking -------------------------------------------------------------------

    def check_text(self, text: str, *, file: str = "<text>", kind: Kind = "text") -> list[Finding]:
        """Misspelled words in *text*, located in it and labelled *file*."""
        if kind not in get_args(Kind):
            raise ValueError(f"kind must be one of {get_args(Kind)}, not {kind!r}")
        checkable, origin = _checkable(text, kind)
        line_starts = _line_starts(text)
        findings = []
        for word, position in self._tokenizer(checkable):
            if self._accepts(word):
                continue
            line, column = _locate(line_starts, origin[position] if origin else position)
            findings.append(Finding(file, line, column, word, self._suggest(word)))
        return findings

    def check_template(
        self, template: str | Path, views: Views | None = None, *, kind: Kind | None = None
    ) -> list[Finding]:
        """Check one template: a file path, or a template name looked up in *views*.

        The kind (text or HTML) follows from the file name unless *kind* is given.
        """
        if views is None:
            path = Path(template)
            text = path.read_text(encoding="utf-8")
        else:
            text, path = views.source(str(template))
        return self.check_text(text, file=str(path), kind=kind or kind_for(path))

    def check_templates(
        self,
        templates: Views | str | Path | Sequence[str | Path],
        *,
        suffixes: Iterable[str] = TEMPLATE_SUFFIXES,
    ) -> list[Finding]:
        """Check every template of a :class:`Views`, or under one or more folders.

        Only files whose last suffix is in *suffixes* are read. A missing folder is an
        error rather than a vacuous pass.
        """
        if isinstance(templates, Views):
            views = templates
        else:
            views = Views([templates] if isinstance(templates, str | Path) else templates)
        for folder in views.folders:
            if not folder.is_dir():
                raise FileNotFoundError(f"template folder {folder} does not exist")
        wanted = {suffix.lower() for suffix in suffixes}
        findings = []
        for name in views.template_names():
            if Path(name).suffix.lower() in wanted:
                findings += self.check_template(name, views)
        return findings

    def check_message(self, message: MailResponse | MailRequest | bytes) -> list[Finding]:
        """Check a rendered message: its Subject, its text body and its HTML body.

        Findings are labelled ``message <Message-ID> subject`` (``body``, ``html``).
        """
        if isinstance(message, bytes):
            message = MailRequest(None, "", "", message)
        if isinstance(message, MailResponse):
            subject, text, markup = message["Subject"], message.body, message.html
            message_id = message["Message-ID"]
        else:
            subject, markup, message_id = message["Subject"], message.html(), message.message_id
            # body() falls back to the HTML part; that one is checked as HTML below.
            has_plain = message.msg.get_body(preferencelist=("plain",)) is not None
            text = message.body() if has_plain else None
        label = f"message {message_id}" if message_id else "message"
        findings = []
        for part, value in (("subject", subject), ("body", text)):
            if value is not None:
                findings += self.check_text(value, file=f"{label} {part}")
        if markup is not None:
            findings += self.check_text(markup, file=f"{label} html", kind="html")
        return findings

    # Words ----------------------------------------------------------------------

    def _accepts(self, word: str) -> bool:
        """Whether *word* is an acronym, a project word or in the dictionary."""
        base = word[:-2] if word.endswith("'s") else word
        if base.isupper() and len(base) <= 5:  # SMTP, HTML, FAQ's
            return True
        if any(w.lower() in self._any_case or w in self._exact for w in (word, base)):
            return True
        return bool(self._dict.check(word))

    def _suggest(self, word: str) -> tuple[str, ...]:
        """Up to max_suggestions corrections, close project words first."""
        if word not in self._suggestions:
            # Compared in lower case, so "lamson" is pointed at the entry "Lamson".
            project = {w.lower(): w for w in self._exact if not w.isupper()}
            project.update((w, w) for w in self._any_case)
            close = difflib.get_close_matches(word.lower(), sorted(project), n=2, cutoff=0.8)
            ranked = dict.fromkeys([*(project[w] for w in close), *self._dict.suggest(word)])
            self._suggestions[word] = tuple(ranked)[: self.max_suggestions]
        return self._suggestions[word]


# Tokenizing ---------------------------------------------------------------------------

_Tokenizer = Callable[[str], Iterable[tuple[str, int]]]


def _tokenizer_for(language: str) -> _Tokenizer:
    """The word splitter for *language*: enchant's, or :func:`_tokenize_english` for English.

    enchant's URL and address filters are a backstop for the masking in _checkable();
    its WikiWordFilter is left out because it also swallows every all-caps word of four
    letters or more, so a typo in a shouted heading passed.
    """
    import enchant.tokenize
    import enchant.tokenize.en

    filters = [enchant.tokenize.URLFilter, enchant.tokenize.EmailFilter]
    try:
        tokenizer: _Tokenizer = enchant.tokenize.get_tokenizer(language, filters=filters)
    except enchant.tokenize.TokenizerNotFoundError:
        # Only English and German have tokenizers; English splits any Latin script.
        tokenizer = enchant.tokenize.get_tokenizer("en", filters=filters)
    # get_tokenizer() puts the language's splitter last, as _split. Should that internal
    # detail change, the check fails and enchant's own (slower) tokenizer is kept.
    if getattr(tokenizer, "_split", None) is enchant.tokenize.en.tokenize:
        return _tokenize_english
    return tokenizer  # German joins words at "-" and "." and not at "'"


# enchant's English tokenizer is pure Python, 7-12 µs a word: most of the time spent
# checking templates. _tokenize_english yields exactly the same (word, offset)
# pairs (tests/mailsim/test_spelling.py compares them on generated text), doing the
# common ASCII case with str methods and regular expressions and handing any chunk with
# other characters to enchant (its letters are str.isalpha() plus combining marks).
# Like enchant, it splits the text at whitespace (for _CHUNK's \S, what is not
# str.isspace()), strips punctuation from either end of each chunk (a chunk of nothing
# else is dropped), skips chunks that look like URLs or addresses (enchant's URLFilter
# and EmailFilter), and finds the words in the rest: letters joined by apostrophes.
_STRIP_START = "\"'`(["
_STRIP_END = "\"'`]).!,?;:"
_URL_OR_ADDRESS = re.compile(r"[a-zA-Z]+://[^\s]|.+@[^.].*\.[a-z]{2,}$")
_ASCII_WORD = re.compile(r"[A-Za-z](?:[A-Za-z']*[A-Za-z])?")


def _tokenize_english(text: str) -> Iterator[tuple[str, int]]:
    """The words of *text* and their offsets, as enchant's English tokenizer finds them."""
    from enchant.tokenize.en import tokenize as enchant_english

    for chunk in _CHUNK.finditer(text):
        raw = chunk[0]
        stripped = raw.lstrip(_STRIP_START)
        start = chunk.start() + len(raw) - len(stripped)
        stripped = stripped.rstrip(_STRIP_END)
        if not stripped:
            continue
        if stripped.isascii():
            if stripped.isalpha():  # the usual case: one plain word
                yield stripped, start
            elif not _URL_OR_ADDRESS.match(stripped):
                for word in _ASCII_WORD.finditer(stripped):
                    yield word[0], start + word.start()
        elif not _URL_OR_ADDRESS.match(stripped):
            for token, offset in enchant_english(stripped):
                yield token, start + offset


# Masking: what is not prose becomes spaces (newlines kept), so offsets stay true. ------


def _checkable(text: str, kind: Kind) -> tuple[str, list[int] | None]:
    """The prose of *text* and, where it was rebuilt from HTML, each character's origin."""
    jinja = (m.span() for m in _JINJA.finditer(text))
    masked = _blank(text, jinja) if kind.endswith("template") else text
    origin: list[int] | None = None
    if kind.startswith("html"):
        visible = _VisibleText(masked)
        masked, origin = "".join(visible.chars), visible.origin
    else:
        masked = _blank(masked, _code_blocks(text, masked))
    masked = _blank(masked, (m.span() for m in _BACKTICKS.finditer(masked)))
    masked = _blank(masked, _not_prose(masked))
    # enchant's tokenizer splits words at U+2019, the typographic apostrophe.
    return masked.replace("\u2019", "'"), origin


def _not_prose(text: str) -> Iterator[tuple[int, int]]:
    """Spans of URLs, addresses and code-like words."""
    for chunk in _CHUNK.finditer(text):
        url = _URL.search(chunk[0])
        # A URL runs to the end of its chunk, but what precedes it may be prose: the
        # link text in "[docs](https://...)".
        end = chunk.start() + url.start() if url else chunk.end()
        if _NOT_PROSE.search(text[chunk.start() : end]):
            end = chunk.start()
        if end < chunk.end():
            yield end, chunk.end()


def _blank(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        for index in range(start, end):
            if chars[index] != "\n":
                chars[index] = " "
    return "".join(chars)


def _code_blocks(original: str, masked: str) -> list[tuple[int, int]]:
    """Spans of fenced code blocks and of indented ones (4+ spaces or a tab).

    Indentation is judged on the *original* line, so that text after a blanked
    ``{% if %}`` is not taken for code; an indented block starts only after a truly
    blank line, so indented lines inside ``{% for %}`` loops are still checked.
    """
    spans = []
    offset = 0
    in_fence = in_indented = False
    after_blank = True
    for line, shown in zip(original.split("\n"), masked.split("\n"), strict=True):
        span = (offset, offset + len(line))
        blank = not line.strip()
        if _FENCE.match(shown):
            in_fence = not in_fence
            spans.append(span)
        elif in_fence:
            spans.append(span)
        elif blank:
            pass  # a blank line neither starts nor ends an indented block
        elif line.startswith(("    ", "\t")) and (in_indented or after_blank):
            in_indented = True
            spans.append(span)
        else:
            in_indented = False
        after_blank = blank
        offset = span[1] + 1
    return spans


class _VisibleText(HTMLParser):
    """The text of an HTML document as a reader sees it, with each character's offset.

    Entities are decoded to the characters they stand for (so ``doesn&rsquo;t`` is one
    word); tags, comments and hidden elements become a single space each.
    """

    def __init__(self, source: str) -> None:
        # Entities must arrive as events of their own to know where they were.
        super().__init__(convert_charrefs=False)
        self._line_starts = _line_starts(source)
        self._hidden = 0
        self.chars: list[str] = []
        self.origin: list[int] = []
        self.feed(source)
        self.close()

    def _here(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def _add(self, text: str, origins: Iterable[int]) -> None:
        self.chars.extend(text)
        self.origin.extend(origins)

    def _separate(self) -> None:
        self._add(" ", [self._here()])

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._hidden += tag in _HIDDEN_ELEMENTS
        self._separate()

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_ELEMENTS and self._hidden:
            self._hidden -= 1
        self._separate()

    def handle_data(self, data: str) -> None:
        if self._hidden:
            self._separate()
        else:
            start = self._here()
            self._add(data, range(start, start + len(data)))

    def handle_entityref(self, name: str) -> None:
        self._reference(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self._reference(f"&#{name};")

    def _reference(self, reference: str) -> None:
        decoded = html.unescape(reference)
        if self._hidden or decoded == reference:  # hidden, or an entity nobody knows
            self._separate()
        else:
            self._add(decoded, [self._here()] * len(decoded))

    def handle_comment(self, data: str) -> None:
        # Declarations and processing instructions need no such override: they stand
        # between tags, and tags already separate words.
        self._separate()


def _line_starts(text: str) -> list[int]:
    # Lines end at "\n" only, as they do for html.parser and for editors' line numbers.
    return [0, *(index + 1 for index, char in enumerate(text) if char == "\n")]


def _locate(line_starts: list[int], offset: int) -> tuple[int, int]:
    """The 1-based line and column of *offset*."""
    line = bisect.bisect_right(line_starts, offset)
    return line, offset - line_starts[line - 1] + 1


def _read_word_file(path: Path) -> list[tuple[str, str]]:
    """The words of a word list, each with its "file:line" for error messages."""
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        word = line.split("#", 1)[0].strip()
        if word:
            entries.append((word, f"{path}:{number}"))
    return entries
