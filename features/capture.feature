Feature: Keeping values from a received mail
  A part of the mail the latest receive step found is kept under a name, and used
  later as ${name} in any quoted parameter, docstring or table cell.

  Background:
    Given the application in "apps/echo"

  Scenario: The sender, used as a recipient and as a pattern
    When "alice@example.org" sends a mail to "echo@echo.example.com" with subject "Who?"
    Then "alice@example.org" receives a mail with subject "Re: Who?"
    And its sender is kept as "the echo"
    And the value kept as "the echo" matches "echo@echo\.example\.com"
    When "alice@example.org" sends a mail to "${the echo}" with subject "Again"
    Then "alice@example.org" receives a mail from "${the echo}" with subject "Re: Again"

  Scenario: The subject, the Message-ID and a header
    When "alice@example.org" sends a mail to "echo@echo.example.com" with subject "What (exactly)?"
    Then "alice@example.org" receives a mail from "echo@.*"
    And its subject is kept as "answer"
    And its Message-ID is kept as "answer id"
    And its header "Auto-Submitted" is kept as "auto"
    Then the value kept as "answer" matches "Re: What \(exactly\)\?"
    And the value kept as "auto" matches "auto-replied"
    When "alice@example.org" sends a mail to "echo@echo.example.com" with subject "${answer}"
      | header      | value        |
      | In-Reply-To | ${answer id} |
    Then "alice@example.org" receives a mail with subject "${answer}"
      """
      Hello from the mailsim echo.
      """

  Scenario: Text found in the body by a regular expression
    When "alice@example.org" sends a mail to "echo@echo.example.com" with subject "Code" and body "the code is 4711."
    Then "alice@example.org" receives a mail with subject "Re: Code"
    And the text matching "code is (\d+)" in it is kept as "code"
    And the text matching "code is \d+" in it is kept as "sentence"
    Then the value kept as "code" matches "4711"
    And the value kept as "sentence" matches "code is 4711"
