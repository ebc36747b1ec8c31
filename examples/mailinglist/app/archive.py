"""The browsable archive: every list's posts as static HTML pages, threaded.

:func:`write_archive` writes, into one folder::

    index.html              every list, with how many posts it has
    python/index.html       the python list's threads, replies under what they answer
    python/17.html          one page per post (its number in the archive)

Any web server can serve the folder (``archive_url`` in ``[settings]`` says where,
for the List-Archive header). The pages come from the app's templates
(``templates/archive/``); being ``.html`` they are autoescaped, so nothing a
poster writes can become markup. Run it from cron, or by hand in the project folder::

    python -m app.archive /var/www/lists/archive
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mailsim_runtime import App, MailRequest

from app import model


@dataclass
class Thread:
    """A post and the replies to it, oldest first."""

    post: model.Post
    replies: list[Thread] = field(default_factory=list)
    parent: model.Post | None = None


def threads(posts: Iterable[model.Post]) -> list[Thread]:
    """The posts (oldest first) as threads: each reply under the post it answers.

    A reply's parent is its In-Reply-To, else the latest of its References that the
    archive has. A parent must be older than the reply, so forged or looping
    references cannot make a cycle; a reply to a post the archive does not have
    starts a thread of its own.
    """
    roots: list[Thread] = []
    seen: dict[str, Thread] = {}
    for post in posts:
        node = Thread(post)
        for reference in (post.in_reply_to, *reversed(post.references)):
            parent = seen.get(reference)
            if parent is not None:
                node.parent = parent.post
                parent.replies.append(node)
                break
        else:
            roots.append(node)
        seen.setdefault(post.message_id, node)
    return roots


def _text(post: model.Post) -> str:
    request = MailRequest(None, post.sender, "", post.raw)
    return (request.body() or "").strip()


def _attachments(post: model.Post) -> list[str]:
    request = MailRequest(None, post.sender, "", post.raw)
    return [a.filename or a.content_type for a in request.attachments()]


def _write(path: Path, text: str) -> None:
    """Replace *path* whole, so a web server never serves half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def write_archive(app: App, folder: str | Path) -> list[Path]:
    """Write every list's archive into *folder*; returns the pages written."""
    root = Path(folder)
    written: list[Path] = []
    with app.bound():
        views = app.views
        summary = []
        for name in model.list_names():
            posts = model.posts(name)
            latest = posts[-1] if posts else None
            summary.append({"name": name, "count": len(posts), "last": latest})
            roots = threads(posts)
            page = root / name / "index.html"
            _write(page, views.render("archive/list.html", list_name=name, threads=roots))
            written.append(page)
            nodes: dict[int, Thread] = {}
            stack = list(roots)
            while stack:
                node = stack.pop()
                nodes[node.post.id] = node
                stack.extend(node.replies)
            for post in posts:
                page = root / name / f"{post.id}.html"
                html = views.render(
                    "archive/post.html",
                    list_name=name,
                    post=post,
                    text=_text(post),
                    attachments=_attachments(post),
                    parent=nodes[post.id].parent,
                    replies=[reply.post for reply in nodes[post.id].replies],
                )
                _write(page, html)
                written.append(page)
        page = root / "index.html"
        _write(page, views.render("archive/index.html", lists=summary))
        written.append(page)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m app.archive FOLDER   (run in the project folder)", file=sys.stderr)
        return 2
    from mailsim_runtime.project import load_project
    from mailsim_runtime.transport import FunctionTransport

    # Only the database is read; nothing is sent.
    app = load_project(Path.cwd(), transport=FunctionTransport())
    try:
        pages = write_archive(app, argv[0])
    finally:
        app.database.dispose()
    print(f"wrote {len(pages)} pages into {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
