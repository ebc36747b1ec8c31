"""The blog's own steps: a shorthand made of mailsim's, and looks at the web site.

The web site steps read the files the app wrote, so they work in the simulated
world only: their scenarios are tagged @world.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from behave import given, then, when

COMMENT_ADDRESS = r"(comment-\d+@blog\.example\.com)"
DELETE_ADDRESS = r"(delete-\d+@blog\.example\.com)"


@given('"{person}" has published "{title}"')
def has_published(context: Any, person: str, title: str) -> None:
    """A first post, confirmed; its comment and delete addresses are kept."""
    context.execute_steps(
        f'''
        When "{person}" sends a mail to "post@blog.example.com" with subject "{title}"
        Then "{person}" receives a mail with subject "Please confirm your first post: {title}"
        When "{person}" replies to the last mail
        Then "{person}" receives a mail with subject "Published: {title}"
        And the text matching "{COMMENT_ADDRESS}" in it is kept as "comment address"
        And the text matching "{DELETE_ADDRESS}" in it is kept as "delete address"
        '''
    )


def _site(context: Any) -> Path:
    return Path(context.mailsim.driver.app.settings["output"])


@when("the index is built")
def the_index_is_built(context: Any) -> None:
    """What the worker does in production: serve every waiting job of the index queue."""
    index = importlib.import_module("app.index")
    if index.run_jobs(context.mailsim.driver.app) == 0:
        raise AssertionError("no index job was waiting")


@then('the page "{name}" shows "{text}"')
def the_page_shows(context: Any, name: str, text: str) -> None:
    page = _site(context) / name
    if not page.is_file():
        found = sorted(p.name for p in _site(context).glob("*.html"))
        raise AssertionError(f"no page {name} on the site; there are: {found}")
    if text not in page.read_text(encoding="utf-8"):
        raise AssertionError(f"{name} does not show {text!r}")


@then('the page "{name}" does not show "{text}"')
def the_page_does_not_show(context: Any, name: str, text: str) -> None:
    if text in (_site(context) / name).read_text(encoding="utf-8"):
        raise AssertionError(f"{name} shows {text!r}")


@then('there is no page "{name}"')
def there_is_no_page(context: Any, name: str) -> None:
    if (_site(context) / name).exists():
        raise AssertionError(f"{name} is still on the site")
