Feature: Conversation state
  A person's conversation with a handler module is found the way the router finds it.

  Scenario: A conversation keyed by the sender
    Given the application in "apps/echo"
    When "alice@example.org" sends a mail to "join@echo.example.com"
    Then "alice@example.org" receives a mail with subject "Welcome"
    And "alice@example.org" is in state "MEMBER" of "echo.membership"
    And "bob@example.org" is in state "START" of "echo.membership"
    When "alice@example.org" sends a mail to "leave@echo.example.com"
    Then "alice@example.org" receives a mail with subject "Goodbye"
    And "alice@example.org" is in state "START" of "echo.membership"

  Scenario: A conversation keyed by the module's state key generator
    Given the application in "examples/mailinglist"
    When "alice@example.org" sends a mail to "python-subscribe@lists.example.com"
    Then "alice@example.org" receives a mail from "python-confirm-.*@lists.example.com"
    And "alice@example.org" is in state "CONFIRMING_SUBSCRIBE"
    And "alice@example.org" is in state "CONFIRMING_SUBSCRIBE" of "app.handlers.mailinglist"

  Scenario: A conversation named by its key
    Given the application in "examples/mailinglist"
    When "alice@example.org" sends a mail to "python-subscribe@lists.example.com"
    Then "alice@example.org" receives a mail from "python-confirm-.*@lists.example.com"
    And the conversation "python:alice@example.org" of "app.handlers.mailinglist" is in state "CONFIRMING_SUBSCRIBE"
    And the conversation "python:bob@example.org" of "app.handlers.mailinglist" is in state "START"
