Feature: Sending and receiving
  People write to the app and answer it; receive steps claim what arrived, each mail once.

  Background:
    Given the application in "apps/echo"

  Scenario: A mail with a subject and a body in a docstring
    When "alice@example.org" sends a mail to "echo@echo.example.com" with subject "Ping"
      """
      Is anybody
      there?
      """
    Then "alice@example.org" receives a mail from "echo@echo.example.com" with subject "Re: Ping" containing "Is anybody"
    And "alice@example.org" receives no mail

  Scenario: The body in the step, and looked for across lines
    When "alice@example.org" sends a mail to "echo@echo.example.com" with subject "Ping" and body "one two three"
    Then "alice@example.org" receives a mail with subject "Re: Ping"
      """
      You wrote:   one
      two three
      """

  Scenario: Every way of saying what arrived
    When "alice@example.org" sends a mail to "echo@echo.example.com" with subject "1"
    And "alice@example.org" sends a mail to "echo@echo.example.com" with subject "2"
    And "alice@example.org" sends a mail to "echo@echo.example.com" with subject "3"
    And "alice@example.org" sends a mail to "echo@echo.example.com" with subject "4"
    And "alice@example.org" sends a mail to "echo@echo.example.com" with subject "5"
    Then "alice@example.org" receives a mail with subject "Re: 4" containing "Hello from"
    And "alice@example.org" receives a mail from "ECHO@echo\.example\.com" containing "mailsim echo"
    And "alice@example.org" receives a mail containing "You wrote"
    And "alice@example.org" receives a mail with subject "Re: 5"
    And "alice@example.org" receives a mail
    And "alice@example.org" receives no mail

  Scenario: Headers to send, and headers to find
    When "alice@example.org" sends a mail to "echo@echo.example.com" with subject "Headers"
      | header   | value           |
      | Reply-To | bob@example.org |
    Then "bob@example.org" receives a mail from "echo@echo.example.com"
      | header         | value        |
      | Auto-Submitted | auto-replied |
    And "alice@example.org" receives no mail

  Scenario: Replying to the last mail, with words
    When "alice@example.org" sends a mail to "echo@echo.example.com" with subject "Ping"
    Then "alice@example.org" receives a mail with subject "Re: Ping"
    When "alice@example.org" replies to the last mail saying "and again"
    Then "alice@example.org" receives a mail with subject "Re: Ping" containing "and again"

  Scenario: Replying to the last mail that arrived, when no step looked at it
    When "alice@example.org" sends a mail to "echo@echo.example.com" with subject "Ping"
    And "alice@example.org" replies to the last mail
      """
      Quoting myself.
      """
    Then "alice@example.org" receives a mail with subject "Re: Ping" containing "Quoting myself."
    And "alice@example.org" receives a mail with subject "Re: Ping" containing "You wrote"

  Scenario: A recipient the app does not take comes back as a bounce
    When "alice@example.org" sends a mail to "nobody@echo.example.com" with subject "Hello?"
    Then "alice@example.org" receives a mail from "MAILER-DAEMON@example.org" containing "nobody@echo.example.com"
