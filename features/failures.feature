Feature: Failing steps say what went wrong
  A step that fails says what it expected and what it found instead, in the
  feature's own words.

  Background:
    Given the application in "apps/echo"

  @loose
  Scenario: A mail from somebody else
    When "alice@example.org" sends a mail to "echo@echo.example.com" with subject "Ping"
    Then this step fails:
      """
      Then "alice@example.org" receives a mail from "nobody@.*" with subject "Re: Ping"
      """
    And the failure says:
      """
      alice@example.org: expected a mail with sender matching /nobody@.*/ and subject containing 'Re: Ping'
      amongst 1 unclaimed mails (nearest first):
      #1 from echo@echo.example.com subject 'Re: Ping' — sender was 'echo@echo.example.com'
      """

  Scenario: No mail at all
    Then this step fails:
      """
      Then "alice@example.org" receives a mail containing "hello"
      """
    And the failure says:
      """
      alice@example.org: expected a mail with body containing 'hello'
      amongst: nothing — no mail has arrived for alice@example.org
      """

  Scenario: Mail that was already claimed
    When "alice@example.org" sends a mail to "echo@echo.example.com" with subject "Once"
    Then "alice@example.org" receives a mail with subject "Re: Once"
    And this step fails:
      """
      Then "alice@example.org" receives a mail with subject "Re: Once"
      """
    And the failure says:
      """
      amongst: nothing new — all 1 mails were claimed before
      (matching mail that an earlier assertion already claimed: #1 from echo@echo.example.com subject 'Re: Once')
      """

  @loose
  Scenario: Mail where none was expected
    When "alice@example.org" sends a mail to "echo@echo.example.com" with subject "Ping"
    Then this step fails:
      """
      Then "alice@example.org" receives no mail
      """
    And the failure says:
      """
      alice@example.org: expected no mail, but 1 arrived:
      #1 from echo@echo.example.com subject 'Re: Ping'
      """

  Scenario: A sender that is not a regular expression
    Then this step fails:
      """
      Then "alice@example.org" receives a mail from "echo@(echo"
      """
    And the failure says:
      """
      the sender 'echo@(echo' is not a regular expression: missing ), unterminated subpattern
      """

  Scenario: A name that was never kept
    When "alice@example.org" sends a mail to "echo@echo.example.com" with subject "Ping"
    Then "alice@example.org" receives a mail
    And its subject is kept as "subject"
    And this step fails:
      """
      When "alice@example.org" sends a mail to "${address}"
      """
    And the failure says:
      """
      nothing was kept as 'address' (kept so far: 'subject')
      """

  Scenario: Nothing to keep anything from
    Then this step fails:
      """
      Then its sender is kept as "x"
      """
    And the failure says:
      """
      there is no mail to keep anything from: a step such as Then "alice@example.org" receives a mail from "…" comes first
      """

  Scenario: A header the mail does not have, text it does not hold
    When "alice@example.org" sends a mail to "echo@echo.example.com" with subject "Ping"
    Then "alice@example.org" receives a mail
    And this step fails:
      """
      Then its header "X-Nothing" is kept as "x"
      """
    And the failure says:
      """
      #1 from echo@echo.example.com subject 'Re: Ping' has no X-Nothing header
      """
    And this step fails:
      """
      Then the text matching "code (\d+)" in it is kept as "code"
      """
    And the failure says:
      """
      nothing in the body of #1 from echo@echo.example.com subject 'Re: Ping' matches /code (\d+)/
      """
    And this step fails:
      """
      Then the value kept as "x" matches "y"
      """
    And the failure says:
      """
      nothing was kept as 'x'
      """

  Scenario: Replying with nothing to reply to
    Then this step fails:
      """
      When "alice@example.org" replies to the last mail
      """
    And the failure says:
      """
      alice@example.org has received no mail yet, so there is no last mail
      """

  Scenario: A table with the wrong columns
    Then this step fails:
      """
      When "alice@example.org" sends a mail to "echo@echo.example.com"
        | header | value | extra |
        | X-A    | 1     | 2     |
      """
    And the failure says:
      """
      a table under a mail step has two columns, header and value; this one has 3: header | value | extra
      """

  Scenario: A conversation in another state
    When "alice@example.org" sends a mail to "join@echo.example.com"
    Then "alice@example.org" receives a mail with subject "Welcome"
    And this step fails:
      """
      Then "alice@example.org" is in state "START" of "echo.membership"
      """
    And the failure says:
      """
      expected conversation 'alice@example.org' of echo.membership in state START, but it is in MEMBER
      conversations of that module: alice@example.org in MEMBER
      """

  Scenario: A conversation named by a key it does not have
    When "alice@example.org" sends a mail to "join@echo.example.com"
    Then "alice@example.org" receives a mail with subject "Welcome"
    And this step fails:
      """
      Then the conversation "alice" of "echo.membership" is in state "MEMBER"
      """
    And the failure says:
      """
      expected conversation 'alice' of echo.membership in state MEMBER, but it is in START
      conversations of that module: alice@example.org in MEMBER
      """

  Scenario: A module the app does not have, or a module left out when there are two
    Then this step fails:
      """
      Then "alice@example.org" is in state "START" of "echo.nothing"
      """
    And the failure says:
      """
      the application has no handler module 'echo.nothing'; it has: echo.handlers, echo.membership
      """
    And this step fails:
      """
      Then "alice@example.org" is in state "START"
      """
    And the failure says:
      """
      the application has several handler modules and the person's mail does not say which one is meant
      """

  Scenario: Remote host steps on the app's own domain, or on an address elsewhere
    Then this step fails:
      """
      Given the host "echo.example.com" is down
      """
    And the failure says:
      """
      echo.example.com is the application's own domain, not a remote host
      """
    And this step fails:
      """
      Given the host "example.net" bounces mail to "bob@example.org"
      """
    And the failure says:
      """
      bob@example.org is not at example.net, so that host never sees its mail
      """

  Scenario: A person in the app's domain
    Then this step fails:
      """
      When "staff@echo.example.com" sends a mail to "echo@echo.example.com"
      """
    And the failure says:
      """
      staff@echo.example.com is in the application's domain (echo.example.com); people live elsewhere
      """

  Scenario: A handler that crashes
    Then this step fails:
      """
      When "alice@example.org" sends a mail to "crash@echo.example.com"
      """
    And the failure says:
      """
      a handler failed on <000001.0.mailsim@example.org> from alice@example.org to crash@echo.example.com: RuntimeError('crash@ always fails')
      """

  Scenario: A misspelled template
    Given the application in "apps/careless"
    Then this step fails:
      """
      Then every template is spelled correctly
      """
    And the failure says:
      """
      1 misspelled word (or missing from the word list):
      careless/templates/welcome.txt:3: sincerly → sincerely
      """

  Scenario: An open relay
    Given the application in "apps/careless"
    Then this step fails:
      """
      Then the server is not an open relay
      """
    And the failure says:
      """
      the server is an open relay: it accepted 4 of 16 probes
      ACCEPTED  MAIL FROM:<> RCPT TO:<u@relay-probe.mailsim.invalid>
      OPEN RELAY: 4 probes accepted
      """
