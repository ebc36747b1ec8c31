"""Tests for mailsim_runtime.view: rendering, strictness, header safety, MIME shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import mailsim_runtime.view as view_module
import pytest
from mailsim_runtime.app import App
from mailsim_runtime.mail import HeaderInjectionError
from mailsim_runtime.view import TemplateError, Views

TEMPLATES = Path(__file__).resolve().parent.parent / "data" / "templates"

INJECTION = "victim@example.org\r\nBcc: everyone@example.net"


@pytest.fixture
def views() -> Views:
    return Views([TEMPLATES])


def respond_kwargs(**changes: Any) -> dict[str, Any]:
    """The keyword arguments of a valid respond() call, with *changes* applied."""
    kwargs: dict[str, Any] = {
        "text": "welcome.txt",
        "to": "{{ who }}",
        "from_": "{{ list }}-owner@lists.example.com",
        "subject": "Welcome to {{ list }}",
    }
    kwargs.update(changes)
    return kwargs


VARIABLES = {"name": "Ada", "list": "python", "who": "ada@example.org"}


# Rendering ----------------------------------------------------------------------


def test_render_fills_in_variables_and_keeps_the_trailing_newline(views: Views) -> None:
    text = views.render("welcome.txt", {"name": "Ada", "list": "python"})
    assert text == "Hello Ada,\n\nWelcome to python.\n"


def test_render_keyword_variables_win_over_the_mapping(views: Views) -> None:
    text = views.render("welcome.txt", {"name": "Ada", "list": "python"}, name="Grace")
    assert text.startswith("Hello Grace,")


def test_render_finds_templates_in_subfolders(views: Views) -> None:
    assert views.render("lists/owner.txt", list="python", owner="guido") == (
        "Owner of python: guido\n"
    )


def test_earlier_folders_win(tmp_path: Path) -> None:
    (tmp_path / "welcome.txt").write_text("Overridden {{ name }}\n")
    views = Views([tmp_path, TEMPLATES])
    assert views.render("welcome.txt", name="Ada") == "Overridden Ada\n"


def test_a_single_folder_may_be_given_alone() -> None:
    assert Views(str(TEMPLATES)).render("note.htm", name="x") == "<b>x</b>\n"


def test_app_views_builds_views_from_its_templates_setting() -> None:
    app = App(templates=TEMPLATES)
    assert app.views.render("note.htm", name="x") == "<b>x</b>\n"


# Errors ------------------------------------------------------------------------


def test_undefined_variable_names_the_variable_template_and_line(views: Views) -> None:
    with pytest.raises(TemplateError) as caught:
        views.render("broken.txt", name="Ada")
    message = str(caught.value)
    assert "nickname" in message
    assert "broken.txt" in message
    assert "line 3" in message
    assert caught.value.template == "broken.txt"
    assert caught.value.line == 3
    assert isinstance(caught.value.__cause__, jinja2.UndefinedError)


def test_undefined_variable_in_an_included_template_names_both(views: Views) -> None:
    with pytest.raises(TemplateError) as caught:
        views.render("outer.txt", name="Ada")
    message = str(caught.value)
    assert "'broken.txt', line 3" in message
    assert "outer.txt" in message
    assert "nickname" in message


def test_undefined_is_an_error_even_in_a_condition(tmp_path: Path) -> None:
    (tmp_path / "cond.txt").write_text("{% if flag %}yes{% endif %}\n")
    with pytest.raises(TemplateError, match="flag"):
        Views([tmp_path]).render("cond.txt")


def test_missing_template_is_named(views: Views) -> None:
    with pytest.raises(TemplateError, match=r"'nope\.txt' not found") as caught:
        views.render("nope.txt")
    assert str(TEMPLATES) in str(caught.value)
    assert isinstance(caught.value.__cause__, jinja2.TemplateNotFound)


def test_missing_folder_is_pointed_out(tmp_path: Path) -> None:
    absent = tmp_path / "absent"
    with pytest.raises(TemplateError, match=r"absent \(missing\)"):
        Views([absent]).render("welcome.txt")


def test_syntax_error_names_template_and_line(views: Views) -> None:
    with pytest.raises(TemplateError, match=r"'syntax\.txt', line 3") as caught:
        views.render("syntax.txt")
    assert caught.value.line == 3
    assert isinstance(caught.value.__cause__, jinja2.TemplateSyntaxError)


# Header templates and injection ------------------------------------------------


def test_respond_renders_header_templates_with_the_variables(views: Views) -> None:
    response = views.respond(VARIABLES, **respond_kwargs(headers={"X-List": "{{ list }}"}))
    assert response["To"] == "ada@example.org"
    assert response["From"] == "python-owner@lists.example.com"
    assert response["Subject"] == "Welcome to python"
    assert response["X-List"] == "python"
    assert response.body == "Hello Ada,\n\nWelcome to python.\n"
    assert response.html is None


def test_header_templates_are_compiled_once_and_the_cache_is_bounded(
    views: Views, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled: list[str] = []
    compile_string = views._strings.from_string

    def counting(source: str) -> jinja2.Template:
        compiled.append(source)
        return compile_string(source)

    monkeypatch.setattr(views._strings, "from_string", counting)
    for who in ("ada@example.org", "bob@example.org"):
        response = views.respond({**VARIABLES, "who": who}, **respond_kwargs())
        assert response["To"] == who  # the cached template renders the new variables
    assert sorted(compiled) == sorted(
        ["{{ who }}", "{{ list }}-owner@lists.example.com", "Welcome to {{ list }}"]
    )
    monkeypatch.setattr(view_module, "HEADER_TEMPLATES_KEPT", 4)
    for number in range(10):
        views.respond(VARIABLES, **respond_kwargs(subject=f"Note {number}"))
    assert len(views._header_templates) <= 4


@pytest.mark.parametrize(
    "changes",
    [
        {"to": "{{ evil }}"},
        {"from_": "{{ evil }}"},
        {"subject": "Hello {{ evil }}"},
        {"headers": {"X-Note": "{{ evil }}"}},
    ],
    ids=["to", "from", "subject", "extra-header"],
)
def test_user_data_cannot_inject_headers(views: Views, changes: dict[str, Any]) -> None:
    with pytest.raises(HeaderInjectionError):
        views.respond({**VARIABLES, "evil": INJECTION}, **respond_kwargs(**changes))


@pytest.mark.parametrize("evil", ["a\rb", "a\nb", "a\u2028b", "a\x0bb", "a\x85b"])
def test_every_kind_of_line_break_is_refused(views: Views, evil: str) -> None:
    with pytest.raises(HeaderInjectionError, match="Subject"):
        views.respond({**VARIABLES, "evil": evil}, **respond_kwargs(subject="{{ evil }}"))


def test_a_line_break_written_in_the_header_template_is_refused_too(views: Views) -> None:
    with pytest.raises(HeaderInjectionError):
        views.respond(VARIABLES, **respond_kwargs(subject="Welcome\r\nBcc: x@example.net"))


def test_an_invalid_header_name_is_refused(views: Views) -> None:
    with pytest.raises(ValueError, match="header name"):
        views.respond(VARIABLES, **respond_kwargs(headers={"X-Bad: yes\r\nBcc": "v"}))


def test_undefined_variable_in_a_header_template_is_named(views: Views) -> None:
    with pytest.raises(TemplateError, match=r"Subject header.*'nobody' is undefined"):
        views.respond(VARIABLES, **respond_kwargs(subject="Hi {{ nobody }}"))


def test_header_templates_are_sandboxed(views: Views) -> None:
    # The mistake a sandbox guards against: user data used as the template itself.
    subject = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(TemplateError, match="unsafe") as caught:
        views.respond(VARIABLES, **respond_kwargs(subject=subject))
    assert isinstance(caught.value.__cause__, jinja2.exceptions.SecurityError)


def test_filters_added_to_the_environment_work_in_headers(views: Views) -> None:
    views.environment.filters["shout"] = lambda value: str(value).upper()
    response = views.respond(VARIABLES, **respond_kwargs(subject="{{ list | shout }}"))
    assert response["Subject"] == "PYTHON"


def test_header_templates_are_not_html_escaped(views: Views) -> None:
    response = views.respond(
        {**VARIABLES, "title": "Q&A <weekly>"}, **respond_kwargs(subject="{{ title }}")
    )
    assert response["Subject"] == "Q&A <weekly>"


# Escaping and MIME shape -------------------------------------------------------


def test_html_templates_are_autoescaped(views: Views) -> None:
    html = views.render("welcome.html", name="<script>x</script>", list="a&b")
    assert "&lt;script&gt;x&lt;/script&gt;" in html
    assert "a&amp;b" in html
    assert "<p>" in html  # the template's own markup is untouched


def test_htm_templates_are_autoescaped(views: Views) -> None:
    assert views.render("note.htm", name="<i>") == "<b>&lt;i&gt;</b>\n"


def test_text_templates_are_not_escaped(views: Views) -> None:
    text = views.render("welcome.txt", name="<script>x</script>", list="a&b")
    assert "Hello <script>x</script>," in text
    assert "Welcome to a&b." in text


def test_text_and_html_make_multipart_alternative(views: Views) -> None:
    response = views.respond(VARIABLES, **respond_kwargs(html="welcome.html"))
    message = response.to_message()
    assert message.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and "Welcome to python." in plain.get_content()
    assert html is not None and "<p>Hello Ada, welcome to python.</p>" in html.get_content()
    assert message["Subject"] == "Welcome to python"


def test_text_only_is_text_plain(views: Views) -> None:
    message = views.respond(VARIABLES, **respond_kwargs()).to_message()
    assert message.get_content_type() == "text/plain"


def test_html_only_is_text_html(views: Views) -> None:
    message = views.respond(VARIABLES, **respond_kwargs(text=None, html="welcome.html"))
    assert message.to_message().get_content_type() == "text/html"


def test_respond_needs_a_template(views: Views) -> None:
    with pytest.raises(ValueError, match="text template, an html template"):
        views.respond(VARIABLES, **respond_kwargs(text=None))


def test_respond_names_a_missing_body_template(views: Views) -> None:
    with pytest.raises(TemplateError, match=r"gone\.txt"):
        views.respond(VARIABLES, **respond_kwargs(text="gone.txt"))


# Introspection -----------------------------------------------------------------


def test_template_names_lists_every_template_sorted(views: Views) -> None:
    names = views.template_names()
    assert names == sorted(names)
    assert {"welcome.txt", "welcome.html", "note.htm", "lists/owner.txt"} <= set(names)


def test_source_gives_the_raw_text_and_its_file(views: Views) -> None:
    text, path = views.source("lists/owner.txt")
    assert text == "Owner of {{ list }}: {{ owner }}\n"
    assert path == TEMPLATES / "lists" / "owner.txt"
    assert path.read_text() == text


def test_source_of_a_missing_template_is_a_template_error(views: Views) -> None:
    with pytest.raises(TemplateError, match=r"nope\.txt"):
        views.source("nope.txt")
