@world
Feature: An application tells hard bounces from soft ones
  A delivery report that comes back to the application is read by the runtime
  (RFC 3464, and the common non-standard formats) and @bounce_to sends it to a hard
  or a soft handler: hard when the address itself is gone (unknown user, unknown
  domain), soft when it may pass (a host down for days, a refusal for policy).

  The newsletter app sends each issue with the member's own VERP envelope sender,
  bounce+bob=example.net@news.example.com, so every report comes back to the
  member's conversation. Hard: the member is DISABLED and gets no more issues. Soft:
  the member stays. Either way the editor is told.

  Background:
    Given the application in "apps/newsletter"
    When "bob@example.net" sends a mail to "join@news.example.com"
    Then "bob@example.net" receives a mail from "news@news.example.com" with subject "Welcome to the news"
    When "carol@example.com" sends a mail to "join@news.example.com"
    Then "carol@example.com" receives a mail from "news@news.example.com" with subject "Welcome to the news"

  Scenario: Members get the issues the editor sends
    When "editor@example.org" sends a mail to "post@news.example.com" with subject "Issue 1"
    Then "bob@example.net" receives a mail from "news@news.example.com" with subject "Issue 1"
      | header     | value |
      | Precedence | list  |
    And "carol@example.com" receives a mail from "news@news.example.com" with subject "Issue 1"

  Scenario: A hard bounce: the address is gone, and gets no more issues
    Given the host "example.net" bounces mail to "bob@example.net"
    When "editor@example.org" sends a mail to "post@news.example.com" with subject "Issue 1"
    Then "carol@example.com" receives a mail with subject "Issue 1"
    And "editor@example.org" receives a mail from "news@news.example.com" with subject "Hard bounce: bob@example.net"
      """
      came back: hard, no more issues go to this address.
      bob@example.net: 5.1.1 userunknown
      """
    And "bob@example.net" is in state "DISABLED" of "newsletter.members"
    And "carol@example.com" is in state "MEMBER" of "newsletter.members"
    When "editor@example.org" sends a mail to "post@news.example.com" with subject "Issue 2"
    Then "carol@example.com" receives a mail with subject "Issue 2"
    And "editor@example.org" receives no mail
    And the undeliverable queue holds no mail

  Scenario: A soft bounce: a host down for good, and the member stays
    Given the host "example.com" is down
    When "editor@example.org" sends a mail to "post@news.example.com" with subject "Issue 1"
    Then "bob@example.net" receives a mail with subject "Issue 1"
    When 6 days pass
    Then "editor@example.org" receives a mail from "news@news.example.com" with subject "Soft bounce: carol@example.com" containing "connection refused (delivery time expired)"
      """
      came back: soft, still a member.
      """
    And "carol@example.com" is in state "MEMBER" of "newsletter.members"
    Given the host "example.com" accepts mail
    When "editor@example.org" sends a mail to "post@news.example.com" with subject "Issue 2"
    Then "carol@example.com" receives a mail with subject "Issue 2"
    And "bob@example.net" receives a mail with subject "Issue 2"
    And "carol@example.com" receives no mail

  Scenario: A soft bounce: a refusal for policy reasons
    Given the host "example.net" refuses mail
    When "editor@example.org" sends a mail to "post@news.example.com" with subject "Issue 1"
    Then "carol@example.com" receives a mail with subject "Issue 1"
    And "editor@example.org" receives a mail with subject "Soft bounce: bob@example.net"
      """
      bob@example.net: 5.7.1 rejected (550 5.7.1 mail refused)
      """
    And "bob@example.net" is in state "MEMBER" of "newsletter.members"

  Scenario: A bounce that comes late, for a member already disabled, is kept
    Issue 1 waits in the relay's queue while bob's host defers it; issue 2 bounces
    first and disables bob. When issue 1 bounces too, bob is DISABLED, where no state
    function takes bounces: the report is kept in the undeliverable queue, not lost.

    Given the host "example.net" defers mail
    When "editor@example.org" sends a mail to "post@news.example.com" with subject "Issue 1"
    Given the host "example.net" bounces mail to "bob@example.net"
    And the host "example.net" accepts mail
    When "editor@example.org" sends a mail to "post@news.example.com" with subject "Issue 2"
    Then "editor@example.org" receives a mail with subject "Hard bounce: bob@example.net"
    And "bob@example.net" is in state "DISABLED" of "newsletter.members"
    And the undeliverable queue holds no mail
    When 5 minutes pass
    Then the undeliverable queue holds 1 mail
    And the undeliverable queue holds a mail from "MAILER-DAEMON@example.net"
    And "editor@example.org" receives no mail
    And "carol@example.com" receives a mail with subject "Issue 1"
    And "carol@example.com" receives a mail with subject "Issue 2"

  Scenario: The newsletter's templates are spelled right
    Then every template is spelled correctly
