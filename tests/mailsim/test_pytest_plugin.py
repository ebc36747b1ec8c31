"""The pytest plugin, driven through pytester in a fresh pytest run each time."""

import subprocess
import sys
import textwrap

import pytest

HANDLERS = """
from mailsim_runtime import MailResponse, current_app, route


@route("echo@(host)")
def START(message, host):
    subject = "Re: " + (message["Subject"] or "")
    reply = MailResponse(from_=f"echo@{host}", subject=subject, body=message.body())
    current_app().relay.reply(message, reply)
    return START
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(
        ".toml", mailsim='[app]\nhostname = "echo.example.com"\nhandlers = ["echo_handlers"]\n'
    )
    pytester.makepyfile(echo_handlers=HANDLERS)
    return pytester


def test_fixtures_find_the_project_and_script_a_conversation(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_echo="""
        def test_echo(mail_world, mailbox):
            alice = mailbox("alice@example.org")
            alice.send("echo@echo.example.com", subject="ping", body="hello")
            reply = alice.expect(subject="Re: ping")
            assert reply.body == "hello\\n"
            assert mail_world.state("echo_handlers", "alice@example.org") == "START"
        """
    )
    project.runpytest().assert_outcomes(passed=1)


def test_unlooked_at_mail_fails_the_test_unless_loosened(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_strict="""
        import pytest

        def test_strict(mailbox):
            mailbox("alice@example.org").send("echo@echo.example.com", subject="ping")

        @pytest.mark.mailsim(strict=False)
        def test_loose(mailbox):
            mailbox("alice@example.org").send("echo@echo.example.com", subject="ping")
        """
    )
    result = project.runpytest()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*mail arrived that no assertion looked at*",
            "*alice@example.org: #1 from echo@echo.example.com subject 'Re: ping'*",
        ]
    )


def test_a_failing_test_shows_the_transcript_and_the_candidates(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_fail="""
        def test_fail(mailbox):
            alice = mailbox("alice@example.org")
            alice.send("echo@echo.example.com", subject="ping")
            alice.expect(subject="Welcome")
        """
    )
    result = project.runpytest()
    result.assert_outcomes(failed=1)  # no second complaint about the unclaimed mail
    result.stdout.fnmatch_lines(
        [
            "*alice@example.org: expected a mail with subject containing 'Welcome'",
            "*amongst 1 unclaimed mails (nearest first):",
            "*#1 from echo@echo.example.com subject 'Re: ping' — subject was 'Re: ping'",
            "*- mailsim transcript -*",
            "*alice@example.org → echo@echo.example.com  'ping'*",
            "*echo_handlers?alice@example.org? START → START (START)",
        ]
    )


def test_the_marker_is_registered_with_its_signature_and_checked(project: pytest.Pytester) -> None:
    result = project.runpytest("--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.mailsim(*, strict=True, seed=0, loop_limit=500, raise_errors=True)*"]
    )
    project.makepyfile(
        test_marker="""
        import pytest

        @pytest.mark.mailsim(strickt=False)
        def test_typo(mail_world):
            pass
        """
    )
    result = project.runpytest("--strict-markers")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*unknown option(s) ?'strickt'?; its signature is mailsim(*"])


def test_seed_changes_ids_and_the_same_seed_repeats_them(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_seed="""
        import pytest
        ids = []

        @pytest.mark.parametrize("seed", [1, 1, 2])
        def test_ids(pytestconfig, seed, request):
            from mailsim.world import World
            world = World(request.getfixturevalue("mailsim_app"), seed=seed, strict=False)
            world.mailbox("a@example.org").send("echo@echo.example.com", subject="x")
            ids.append(world.mailbox("a@example.org").last.message_id)

        def test_compare():
            assert ids[0] == ids[1] != ids[2]
        """
    )
    project.runpytest().assert_outcomes(passed=4)


def test_mailsim_app_fixture_can_be_overridden(project: pytest.Pytester) -> None:
    project.makeconftest(
        """
        import pytest
        from mailsim_runtime import App

        @pytest.fixture
        def mailsim_app():
            return lambda: App(["echo_handlers"], hostname="other.example.com")
        """
    )
    project.makepyfile(
        test_other="""
        def test_other(mailbox, mail_world):
            assert mail_world.app.domains == ["other.example.com"]
            alice = mailbox("alice@example.org")
            alice.send("echo@other.example.com", subject="x")
            alice.expect(sender="echo@other.example.com")
        """
    )
    project.runpytest().assert_outcomes(passed=1)


def test_live_option_fails_clearly_instead_of_passing(project: pytest.Pytester) -> None:
    project.makepyfile(test_live="def test_live(mail_world):\n    pass\n")
    result = project.runpytest("--mailsim-live", "127.0.0.1:2525")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*--mailsim-live 127.0.0.1:2525*did not pass*"])


def test_without_a_project_the_failure_says_what_to_do(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_none="def test_none(mail_world):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no mailsim.toml at or above*override the mailsim_app fixture*"])


def test_importing_the_plugin_does_not_import_aiosmtpd() -> None:
    code = textwrap.dedent(
        """
        import sys
        import mailsim.pytest_plugin
        assert "aiosmtpd" not in sys.modules, sorted(m for m in sys.modules if "smtpd" in m)
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)
