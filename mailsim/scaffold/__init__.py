"""What ``mailsim gen`` writes: a new project whose tests pass as generated.

The project's files are in the ``project`` folder beside this module. Each name
there ends in ``.tmpl`` (so the tools that check mailsim itself leave the sample
code alone) and a leading ``dot-`` stands for ``.``; both are undone on writing.
In the text, these placeholders are filled in:

``__PROJECT__``        the project's name (its folder's name)
``__PROJECT_SLUG__``   the name in lower case, letters, digits and ``-`` only
``__DOMAIN__``         the application's mail domain
``__DOMAIN_RE__``      the same as a regular expression (for ``router_defaults``)
``__PEOPLE__``         a domain for the people of the tests, never the app's own
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

__all__ = [
    "ScaffoldError",
    "default_domain",
    "project_files",
    "slug",
    "write_project",
]

TEMPLATE_SUFFIX = ".tmpl"
DOT_PREFIX = "dot-"

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


class ScaffoldError(ValueError):
    """The project cannot be written; the message says why, naming the path or value."""


@dataclass(frozen=True)
class _Names:
    project: str
    domain: str

    @property
    def people(self) -> str:
        # The world refuses people in the application's own domain.
        return "example.net" if self.domain == "example.org" else "example.org"

    def fill(self, text: str) -> str:
        for placeholder, value in (
            ("__PROJECT_SLUG__", slug(self.project) or "mailsim"),
            ("__PROJECT__", self.project),
            ("__DOMAIN_RE__", re.escape(self.domain)),
            ("__DOMAIN__", self.domain),
            ("__PEOPLE__", self.people),
        ):
            text = text.replace(placeholder, value)
        return text


def slug(name: str) -> str:
    """*name* in lower case with every run of other characters made one ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def default_domain(name: str) -> str:
    """The mail domain a project called *name* gets unless told: ``name.example.com``."""
    label = slug(name)[:63].strip("-")
    return f"{label}.example.com" if label else "example.com"


def _check_domain(domain: str) -> str:
    domain = domain.strip().lower().rstrip(".")
    if len(domain) > 253 or not _DOMAIN.fullmatch(domain):
        raise ScaffoldError(
            f"{domain!r} is not a domain name (letters, digits and '-' in dot-separated labels)"
        )
    return domain


def _template_files(folder: Traversable, under: PurePosixPath) -> list[tuple[PurePosixPath, str]]:
    found = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        name = entry.name
        if entry.is_dir():
            if name != "__pycache__":
                found += _template_files(entry, under / name)
        elif name.endswith(TEMPLATE_SUFFIX):
            name = name.removesuffix(TEMPLATE_SUFFIX)
            if name.startswith(DOT_PREFIX):
                name = "." + name.removeprefix(DOT_PREFIX)
            found.append((under / name, entry.read_text(encoding="utf-8")))
    return found


def project_files(name: str, domain: str | None = None) -> dict[PurePosixPath, str]:
    """The files of a new project called *name*: relative path → text."""
    names = _Names(name, _check_domain(domain) if domain is not None else default_domain(name))
    template = resources.files(__name__).joinpath("project")
    return {path: names.fill(text) for path, text in _template_files(template, PurePosixPath("."))}


def write_project(target: Path, *, domain: str | None = None) -> list[Path]:
    """Write a new project into the folder *target* (made if needed); the files written.

    Refuses a *target* that is a file or a folder with anything in it: nothing is
    ever overwritten.
    """
    if target.exists() and not target.is_dir():
        raise ScaffoldError(f"{target}: exists and is not a folder")
    if target.is_dir() and any(target.iterdir()):
        raise ScaffoldError(f"{target}: the folder is not empty; give a new or empty one")
    name = target.resolve().name
    files = project_files(name, domain)
    written = []
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        written.append(path)
    return written
