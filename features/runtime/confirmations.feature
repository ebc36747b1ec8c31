@world
Feature: Confirmations expire
  A request that must come from its sender (a subscription, say) is kept by the
  runtime's confirmation engine until the sender writes to a secret address mailed
  to them. The confirming app gives its confirmations two days
  ([app] confirmation_lifetime = "2d"); an answer after that finds nothing to confirm.

  Background:
    Given the application in "apps/confirming"
    When "alice@example.org" sends a mail to "subscribe@confirm.example.com"
    Then "alice@example.org" receives a mail from "news-confirm-[a-z0-9]+@confirm.example.com" with subject "Please confirm"
    And its sender is kept as "confirmation address"
    And "alice@example.org" is in state "CONFIRMING"

  Scenario: A confirmation answered in time works
    When 47 hours pass
    And "alice@example.org" replies to the last mail
    Then "alice@example.org" receives a mail from "news@confirm.example.com" with subject "Welcome to the news"
    And "alice@example.org" is in state "MEMBER"

  Scenario: A confirmation answered when its lifetime is over does not
    When 2 days pass
    And "alice@example.org" replies to the last mail
    Then "alice@example.org" receives a mail from "news@confirm.example.com" with subject "Not confirmed"
      """
      That confirmation address has expired
      """
    And "alice@example.org" is in state "START"

  Scenario: After an expired confirmation, asking again works
    When 1 week passes
    And "alice@example.org" sends a mail to "${confirmation address}"
    Then "alice@example.org" receives a mail with subject "Not confirmed"
    When "alice@example.org" sends a mail to "subscribe@confirm.example.com"
    Then "alice@example.org" receives a mail with subject "Please confirm"
    And its sender is kept as "second address"
    When "alice@example.org" sends a mail to "${second address}"
    Then "alice@example.org" receives a mail with subject "Welcome to the news"

  Scenario: Asking again replaces the confirmation: only the newest address works
    When "alice@example.org" sends a mail to "subscribe@confirm.example.com"
    Then "alice@example.org" receives a mail with subject "Please confirm"
    And its sender is kept as "second address"
    When "alice@example.org" sends a mail to "${confirmation address}"
    Then "alice@example.org" receives a mail with subject "Not confirmed"
    And "alice@example.org" is in state "CONFIRMING"
    When "alice@example.org" sends a mail to "${second address}"
    Then "alice@example.org" receives a mail with subject "Welcome to the news"

  Scenario: A confirmation address is good for its own sender only
    Bob is in no conversation that waits for a confirmation: no state function of
    his takes mail to a confirmation address, and the mail is kept, not lost.

    When "bob@example.org" sends a mail to "${confirmation address}"
    Then "bob@example.org" receives no mail
    And the undeliverable queue holds a mail from "bob@example.org"
    And "bob@example.org" is in state "START"
    And "alice@example.org" is in state "CONFIRMING"

  Scenario: The confirming app's templates are spelled right
    Then every template is spelled correctly
