"""The web site: HTML pages written into the blog's output folder.

The folder is ``[settings] output`` (``run/blog``), relative to the project folder;
the environment variable ``OSB_OUTPUT`` overrides it, and so can a test, by setting
``app.settings["output"]``. A web server serves the folder at ``[settings] base_url``.

Pages are rendered from the ``web/`` templates. They are ``.html`` templates, so
Jinja escapes everything a mail put in them: a ``<script>`` in a post is shown,
never run. Each file is replaced in one step (written beside, then renamed), so a
reader never sees half a page.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import unicodedata
from datetime import datetime
from email.utils import parseaddr
from pathlib import Path

from mailsim_runtime import App, Attachment, MailRequest, current_app

from app import model

#: The project folder (the one holding mailsim.toml): this package's parent.
PROJECT = Path(__file__).resolve().parent.parent

#: The images a post may carry, by content type, with how their files begin.
IMAGE_TYPES: dict[str, tuple[str, tuple[bytes, ...]]] = {
    "image/png": (".png", (b"\x89PNG\r\n\x1a\n",)),
    "image/jpeg": (".jpg", (b"\xff\xd8\xff",)),
    "image/gif": (".gif", (b"GIF87a", b"GIF89a")),
}

MAX_TITLE = 200


def setup(app: App) -> None:
    """``[app] setup``: settle where the pages go and where they are served from."""
    folder = Path(os.environ.get("OSB_OUTPUT") or app.settings.get("output") or "run/blog")
    app.settings["output"] = str(folder if folder.is_absolute() else PROJECT / folder)
    app.settings.setdefault("base_url", f"http://{app.hostname}/")
    app.settings.setdefault("title", "The one-shot blog")


def output_folder() -> Path:
    folder = Path(current_app().settings["output"])
    return folder if folder.is_absolute() else PROJECT / folder


def url_for(name: str) -> str:
    """The address on the web of the output file *name*."""
    base = str(current_app().settings["base_url"])
    return base.rstrip("/") + "/" + name


def page_name(post: model.Post) -> str:
    return f"{post.slug}.html"


# What a mail gives a post ----------------------------------------------------------


def slugify(text: str) -> str:
    """A page name made of *text*'s words: ``"Hello, World!"`` → ``hello-world``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    return "-".join(words)[:60].strip("-") or "post"


def title_of(message: MailRequest) -> str:
    """The post's title: the mail's subject, on one line, not too long."""
    title = " ".join((message["Subject"] or "").split())
    if len(title) > MAX_TITLE:
        title = title[: MAX_TITLE - 1].rstrip() + "…"
    return title or "Untitled"


def name_of(message: MailRequest) -> str:
    """Who wrote *message*, as a page shows it: the From name, else the address's
    local part (a page never shows a whole address, for spammers read pages too)."""
    name, address = parseaddr(message["From"] or "")
    name = " ".join(name.split())
    return name[:200] or (address or message.sender).partition("@")[0][:200] or "someone"


def text_of(message: MailRequest) -> str:
    """The mail's text, without trailing spaces and the ``-- `` signature."""
    text = (message.body() or "").replace("\r\n", "\n")
    text, _, _ = text.partition("\n-- \n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def paragraphs(text: str) -> list[str]:
    """*text* cut at its blank lines (the template keeps the lines within each)."""
    return [part.strip("\n") for part in re.split(r"\n\s*\n", text) if part.strip()]


def images_in(message: MailRequest) -> list[tuple[Attachment, str]]:
    """The attached images worth publishing, with the file suffix each gets.

    Only PNG, JPEG and GIF whose bytes really begin like one: the content type
    alone is the sender's word, and a page must not serve HTML named ``.png``.
    """
    found = []
    for attachment in message.attachments():
        kind = IMAGE_TYPES.get(attachment.content_type.lower())
        if kind is not None and attachment.data.startswith(kind[1]):
            found.append((attachment, kind[0]))
    return found


# Writing -----------------------------------------------------------------------------


def write_file(path: Path, data: bytes) -> None:
    """Replace *path* with *data* in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; the web server reads it
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def save_images(post: model.Post, images: list[tuple[Attachment, str]]) -> list[str]:
    """Write a post's images as ``images/<post>-<n>.<suffix>``; their names.

    The names are made here: an attachment's own file name is the sender's
    choice, and could point anywhere (``../../etc/passwd``).
    """
    names = []
    for number, (attachment, suffix) in enumerate(images, 1):
        name = f"images/{post.id}-{number}{suffix}"
        write_file(output_folder() / name, attachment.data)
        names.append(name)
    return names


def render_post(post: model.Post) -> Path:
    """Write the post's page, with its comments as they are now."""
    app = current_app()
    html = app.views.render(
        "web/post.html",
        blog_title=app.settings["title"],
        post=post,
        date=date_text(post.created),
        paragraphs=paragraphs(post.body),
        comments=[
            {
                "author": c.author_name,
                "date": date_text(c.created),
                "paragraphs": paragraphs(c.body),
            }
            for c in model.comments_on(post.id)
        ],
        comment_address=f"comment-{post.id}@{app.hostname}",
    )
    path = output_folder() / page_name(post)
    write_file(path, html.encode("utf-8"))
    return path


def remove_post(post: model.Post) -> None:
    """Take the post's page and images off the site."""
    for name in (page_name(post), *post.images):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(output_folder() / name)


def date_text(moment: datetime) -> str:
    return f"{moment.day} {moment:%B %Y}"
