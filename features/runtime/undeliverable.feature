Feature: Undeliverable mail is refused at once, or kept: never lost
  The server takes mail only for an address a route takes (and postmaster): anything
  else is refused at RCPT with 550 5.1.1, before the message is sent, so the sender's
  own mail server tells them at once and nobody gets a bounce later. Mail that was
  taken but that no handler can take after all — postmaster's, or mail that no state
  function of its conversation's state takes — goes to the app's undeliverable queue,
  where a person can look at it.

  Scenario: Mail for an address no route takes is refused, and the sender told
    Given the application in "apps/responder"
    When "alice@example.org" sends a mail to "nobody@responder.example.com" with subject "Hello?"
    Then "alice@example.org" receives a mail from "MAILER-DAEMON@example.org" with subject "Undelivered Mail Returned to Sender" containing "<nobody@responder.example.com>: 550 5.1.1"
      | header       | value            |
      | Content-Type | multipart/report |

  @world
  Scenario: Nothing refused at RCPT reaches the application
    Given the application in "apps/responder"
    When "alice@example.org" sends a mail to "nobody@responder.example.com" with subject "Hello?"
    Then "alice@example.org" receives a mail from "MAILER-DAEMON@example.org"
    And the undeliverable queue holds no mail
    And the "unanswered" queue holds no mail

  @world
  Scenario: Mail to postmaster is always taken, and kept for a person
    RFC 5321 wants postmaster to take mail; the responder has no route for it, so its
    mail waits in the undeliverable queue.

    Given the application in "apps/responder"
    When "alice@example.org" sends a mail to "postmaster@responder.example.com" with subject "Your server"
    Then "alice@example.org" receives no mail
    And the undeliverable queue holds 1 mail
    And the undeliverable queue holds a mail from "alice@example.org"

  @world
  Scenario: Mail no state function takes in the conversation's state is kept
    The confirmation address reaches only the CONFIRMING state; bob's conversation is
    in START.

    Given the application in "apps/confirming"
    When "alice@example.org" sends a mail to "subscribe@confirm.example.com"
    Then "alice@example.org" receives a mail from "news-confirm-.*@confirm.example.com"
    And its sender is kept as "alice's confirmation"
    When "bob@example.org" sends a mail to "${alice's confirmation}" with subject "Guess"
    Then "bob@example.org" receives no mail
    And the undeliverable queue holds 1 mail
    And the undeliverable queue holds a mail from "bob@example.org"
    And "bob@example.org" is in state "START"

  @world
  Scenario: A queue step names the mail it did not find, and why the queue keeps it
    Given the application in "apps/responder"
    When "alice@example.org" sends a mail to "postmaster@responder.example.com" with subject "Your server"
    Then this step fails:
      """
      Then the undeliverable queue holds a mail from "bob@example.org"
      """
    And the failure says:
      """
      expected a mail from /bob@example.org/ in the undeliverable queue; the undeliverable queue holds 1:
      #1 from alice@example.org to postmaster@responder.example.com subject 'Your server' — kept because: no route takes postmaster@responder.example.com
      """
    And this step fails:
      """
      Then the undeliverable queue holds 2 mails
      """
    And the failure says:
      """
      expected 2 mails in the undeliverable queue; the undeliverable queue holds 1:
      """
    And this step fails:
      """
      Then the "spam" queue holds no mail
      """
    And the failure says:
      """
      the application has no queue 'spam'; it has: unanswered, undeliverable
      """
