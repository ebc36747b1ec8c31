Feature: The python mailing list
  People join the list by writing to python-subscribe@ and answering the
  confirmation it sends; then whatever a member writes to the list reaches every
  other member, and a member can leave the same way they came in.

  The same scenarios run in the simulated world (`mailsim run`) and against the
  real server (`mailsim run --live HOST:PORT`); those tagged @world move the clock,
  which only the world can do.

  Scenario: Subscribing needs a confirmation
    When "alice@example.org" sends a mail to "python-subscribe@lists.example.com"
    Then "alice@example.org" receives a mail from "python-confirm-.*@lists.example.com" with subject "Please confirm: subscribe to python"
    And "alice@example.org" is in state "CONFIRMING_SUBSCRIBE" of "app.handlers.mailinglist"

  Scenario: The confirmation address is kept and written to
    When "alice@example.org" sends a mail to "python-subscribe@lists.example.com"
    Then "alice@example.org" receives a mail from "python-confirm-.*@lists.example.com"
    And its sender is kept as "confirmation address"
    When "alice@example.org" sends a mail to "${confirmation address}" with subject "yes"
    Then "alice@example.org" receives a mail from "python@lists.example.com" with subject "Welcome to python"
    And "alice@example.org" is in state "POSTING" of "app.handlers.mailinglist"

  Scenario: Replying to the confirmation subscribes
    When "alice@example.org" sends a mail to "python-subscribe@lists.example.com"
    Then "alice@example.org" receives a mail containing "To confirm, reply to this message"
    When "alice@example.org" replies to the last mail
    Then "alice@example.org" receives a mail from "python@lists.example.com" containing "To leave the list, write to python-unsubscribe@lists.example.com"
    And "alice@example.org" is in state "POSTING"

  Scenario: A wrong confirmation address does nothing
    When "alice@example.org" sends a mail to "python-subscribe@lists.example.com"
    Then "alice@example.org" receives a mail with subject "Please confirm: subscribe to python"
    When "alice@example.org" sends a mail to "python-confirm-0000@lists.example.com"
    Then "alice@example.org" receives no mail
    And "alice@example.org" is in state "CONFIRMING_SUBSCRIBE"

  Scenario: A post reaches every other member
    Given "alice@example.org" and "bob@example.org" are members
    When "alice@example.org" sends a mail to "python@lists.example.com" with subject "Hello"
      """
      Hi everyone, is this thing on?
      """
    Then "bob@example.org" receives a mail from "alice@example.org" with subject "[python] Hello" containing "Hi everyone"
    And "alice@example.org" receives no mail
    And "carol@example.org" receives no mail

  Scenario: A post carries the list's headers
    Given "alice@example.org" and "bob@example.org" are members
    When "bob@example.org" sends a mail to "python@lists.example.com" with subject "Headers"
    Then "alice@example.org" receives a mail with subject "[python] Headers"
      | header           | value                                       |
      | List-Id          | <python.lists.example.com>                  |
      | List-Unsubscribe | <mailto:python-unsubscribe@lists.example.com> |
      | Precedence       | list                                        |
    And its header "List-Post" is kept as "post address"
    And the value kept as "post address" matches "<mailto:python@lists\.example\.com>"

  Scenario: A reply to a post goes to the list
    Given "alice@example.org" and "bob@example.org" are members
    When "alice@example.org" sends a mail to "python@lists.example.com" with subject "Question"
    Then "bob@example.org" receives a mail with subject "[python] Question"
    When "bob@example.org" sends a mail to "python@lists.example.com" with subject "Re: [python] Question" and body "An answer"
    Then "alice@example.org" receives a mail with subject "Re: [python] Question" containing "An answer"

  Scenario: Unsubscribing needs a confirmation too
    Given "bob@example.org" is a member
    When "bob@example.org" sends a mail to "python-unsubscribe@lists.example.com"
    Then "bob@example.org" receives a mail with subject "Please confirm: unsubscribe from python"
    When "bob@example.org" replies to the last mail
    Then "bob@example.org" receives a mail with subject "You have left python"
    And "bob@example.org" is in state "START" of "app.handlers.mailinglist"

  Scenario: A member who left gets no more posts
    Given "alice@example.org" and "bob@example.org" are members
    When "bob@example.org" sends a mail to "python-unsubscribe@lists.example.com"
    Then "bob@example.org" receives a mail with subject "Please confirm: unsubscribe from python"
    When "bob@example.org" replies to the last mail
    Then "bob@example.org" receives a mail with subject "You have left python"
    When "alice@example.org" sends a mail to "python@lists.example.com" with subject "Still there?"
    Then "bob@example.org" receives no mail

  Scenario: Mail to an address no route takes is refused
    When "alice@example.org" sends a mail to "nobody-here@lists.example.com"
    Then "alice@example.org" receives a mail from "MAILER-DAEMON@example.org" containing "nobody-here@lists.example.com"

  Scenario: The list is safe to run
    Then every template is spelled correctly
    And the server is not an open relay

  @world
  Scenario: A confirmation expires after three days
    When "alice@example.org" sends a mail to "python-subscribe@lists.example.com"
    Then "alice@example.org" receives a mail from "python-confirm-.*@lists.example.com"
    When 3 days pass
    And "alice@example.org" replies to the last mail
    Then "alice@example.org" receives no mail
    And "alice@example.org" is in state "CONFIRMING_SUBSCRIBE"
