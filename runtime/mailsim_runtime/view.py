"""Mail templates: Jinja2 rendering into a :class:`~mailsim_runtime.mail.MailResponse`.

:class:`Views` renders template *files* for bodies (text and/or HTML) and small
template *strings* for header values (``subject="Welcome to {{ list }}"``). Every
rendered header value is checked for line breaks, so user data passed in the
variables can never start a header of its own. Undefined variables are errors,
and every failure is a :class:`TemplateError` that names the template and, where
Jinja knows it, the line.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mailsim_runtime.mail import HeaderInjectionError, MailResponse, check_header_value

__all__ = ["TemplateError", "Views"]

# Everything str.splitlines() breaks on. The email package refuses all of these in a
# header value, but only when the message is finally built; refusing them at render
# time names the header and the template instead of failing later in the relay.
_LINE_BREAKS = frozenset("\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029")

# RFC 5322 field-name: printable US-ASCII except the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+")


HEADER_TEMPLATES_KEPT = 512  # compiled header template strings a Views keeps


class TemplateError(Exception):
    """A template could not be found, parsed or rendered.

    ``template`` is the template at fault (a file name, or a description of a header
    template string) and ``line`` its line where Jinja knows it. The Jinja exception
    is kept as ``__cause__``.
    """

    def __init__(self, message: str, *, template: str, line: int | None = None) -> None:
        super().__init__(message)
        self.template = template
        self.line = line


class Views:
    """The templates of one application, found in one or more folders.

    Earlier folders win when two hold a template of the same name. HTML templates
    (``.html``, ``.htm``) are autoescaped; text templates and header strings are not,
    because mail text is not markup.
    """

    def __init__(self, folders: Sequence[str | Path]) -> None:
        # A lone str is a Sequence too (of one-letter folders): take it as one folder.
        given = [folders] if isinstance(folders, str | Path) else folders
        self.folders: list[Path] = [Path(folder) for folder in given]
        self.environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(self.folders),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html", "htm"),
                disabled_extensions=(),
                default_for_string=False,
                default=False,
            ),
            keep_trailing_newline=True,
        )
        # Header template strings get a sandbox of their own: the one mistake that is
        # easy to make with them is building the template string itself from user data
        # (subject="Re: " + message["Subject"]), and the sandbox keeps that from
        # reaching Python internals. It shares the filters and tests, so a filter an
        # application adds to ``environment`` works in headers too.
        self._strings = ImmutableSandboxedEnvironment(
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
        )
        self._strings.filters = self.environment.filters
        self._strings.tests = self.environment.tests
        # Compiling a header template string costs more than rendering it, and an app
        # uses the same few again and again. Bounded, since a template string built
        # from user data (the mistake the sandbox is for) is new every time.
        self._header_templates: dict[str, jinja2.Template] = {}

    def __repr__(self) -> str:
        return f"Views({[str(folder) for folder in self.folders]!r})"

    # Rendering ------------------------------------------------------------------

    def render(self, template: str, variables: Mapping[str, Any] | None = None, **more: Any) -> str:
        """Render the template file *template* with *variables* and *more* (which win)."""
        context = {**(variables or {}), **more}
        try:
            return self.environment.get_template(template).render(context)
        except jinja2.TemplateError as error:
            raise self._file_error(template, error) from error

    def respond(
        self,
        variables: Mapping[str, Any],
        *,
        text: str | None = None,
        html: str | None = None,
        to: str,
        from_: str,
        subject: str,
        headers: Mapping[str, str] | None = None,
    ) -> MailResponse:
        """Build a response from templates.

        *text* and *html* name template files (at least one; both make a
        multipart/alternative message). *to*, *from_*, *subject* and the values of
        *headers* are template strings rendered with the same *variables*: keep user
        data in *variables*, never in the template strings themselves. A rendered
        header value holding a line break raises
        :class:`~mailsim_runtime.mail.HeaderInjectionError`.
        """
        if text is None and html is None:
            raise ValueError("respond() needs a text template, an html template, or both")
        rendered = {
            "To": self._render_header("To", to, variables),
            "From": self._render_header("From", from_, variables),
            "Subject": self._render_header("Subject", subject, variables),
        }
        extra: dict[str, str] = {}
        for name, value in (headers or {}).items():
            if not _FIELD_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid header name")
            extra[name] = self._render_header(name, value, variables)
        return MailResponse(
            to=rendered["To"],
            from_=rendered["From"],
            subject=rendered["Subject"],
            body=None if text is None else self.render(text, variables),
            html=None if html is None else self.render(html, variables),
            headers=extra,
        )

    def _render_header(self, name: str, source: str, variables: Mapping[str, Any]) -> str:
        label = f"the {name} header template {source!r}"
        try:
            value = self._header_template(source).render(variables)
        except jinja2.TemplateError as error:
            raise TemplateError(f"{label}: {error}", template=label) from error
        check_header_value(name, value)
        breaks = sorted(_LINE_BREAKS.intersection(value))
        if breaks:
            raise HeaderInjectionError(
                f"refusing header {name}: its value contains a line break "
                f"({', '.join(map(repr, breaks))}) after rendering {source!r}: {value!r}"
            )
        return value

    def _header_template(self, source: str) -> jinja2.Template:
        template = self._header_templates.get(source)
        if template is None:
            if len(self._header_templates) >= HEADER_TEMPLATES_KEPT:
                self._header_templates.clear()
            template = self._header_templates[source] = self._compile_header(source)
        return template

    def _compile_header(self, source: str) -> jinja2.Template:
        strings = self._strings
        shared = self.environment.bytecode_cache
        if shared is None:
            return strings.from_string(source)
        # Apps built from one AppTemplate share its cache: each header string is
        # compiled once for all of them. The source is its own key.
        bucket = shared.get_bucket(strings, source, None, source)
        if bucket.code is None:
            bucket.code = strings.compile(source)
            shared.set_bucket(bucket)
        return strings.template_class.from_code(strings, bucket.code, strings.make_globals(None))

    # Introspection --------------------------------------------------------------

    def template_names(self) -> list[str]:
        """Every template file in the folders, by the name :meth:`render` takes, sorted."""
        return self.environment.list_templates()

    def source(self, template: str) -> tuple[str, Path]:
        """The raw text of *template* and the file it comes from."""
        loader = self.environment.loader
        assert loader is not None  # set in __init__
        try:
            text, filename, _ = loader.get_source(self.environment, template)
        except jinja2.TemplateNotFound as error:
            raise self._file_error(template, error) from error
        return text, Path(filename) if filename else Path(template)

    # Errors ---------------------------------------------------------------------

    def _file_error(self, template: str, error: jinja2.TemplateError) -> TemplateError:
        """A :class:`TemplateError` for *error*, raised while rendering *template*."""
        name: str
        line: int | None
        if isinstance(error, jinja2.TemplateSyntaxError):
            # The syntax error may be in an included template; Jinja says which.
            name, line = error.name or template, error.lineno
            what = error.message or str(error)
        else:
            name, line = self._failing_frame(error) or (template, None)
            what = str(error)
            if isinstance(error, jinja2.TemplateNotFound):
                missing = error.name or template
                where = self._describe_folders()
                if missing == template:
                    return TemplateError(
                        f"template {template!r} not found in {where}", template=template
                    )
                what = f"template {missing!r} not found in {where}"
        at = f"template {name!r}" + ("" if line is None else f", line {line}")
        if name != template:
            at += f" (rendering {template!r})"
        return TemplateError(f"{at}: {what}", template=name, line=line)

    def _failing_frame(self, error: BaseException) -> tuple[str, int] | None:
        """The innermost template frame of *error*'s traceback: (template name, line).

        Jinja rewrites a rendering error's traceback so that each frame of compiled
        template code becomes a stand-in frame carrying the template's file and line
        (recognisable by the ``__jinja_exception__`` global it runs with); the
        deepest one is where the template went wrong, which may be an included one.
        """
        found: tuple[str, int] | None = None
        for frame, line in traceback.walk_tb(error.__traceback__):
            if "__jinja_exception__" in frame.f_globals:
                found = (self._template_name(frame.f_code.co_filename), line)
        return found

    def _template_name(self, filename: str) -> str:
        """The name :meth:`render` knows the template file *filename* by."""
        path = Path(filename).resolve()
        for folder in self.folders:
            try:
                return path.relative_to(folder.resolve()).as_posix()
            except ValueError:
                continue
        return filename

    def _describe_folders(self) -> str:
        described = [
            str(folder) + ("" if folder.is_dir() else " (missing)") for folder in self.folders
        ]
        return ", ".join(described) if described else "no folders"
