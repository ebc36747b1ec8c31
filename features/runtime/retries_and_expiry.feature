@world
Feature: The relay retries, and reports what it cannot deliver
  Mail the application sends is queued first. A temporary failure (4xx, a host that
  does not answer) is retried: after 5 minutes, then 10, 20… up to every 4 hours. A
  permanent failure (5xx), or a temporary one still failing when the mail's lifetime
  of 5 days is over, sends the envelope sender an RFC 3464 delivery report from the
  null sender <>. A report that cannot be delivered is kept, never reported in turn.

  The forwarder app sends bob@forward.example.com's mail on to bob@example.net, keeping
  its envelope sender: reports go back to whoever wrote it.

  Background:
    Given the application in "apps/forwarder"

  Scenario: Mail is forwarded
    When "alice@example.org" sends a mail to "bob@forward.example.com" with subject "Minutes"
    Then "bob@example.net" receives a mail from "alice@example.org" with subject "Minutes"

  Scenario: A host that defers twice gets the mail at the third attempt, 15 minutes on
    Given the host "example.net" defers mail 2 times
    When "alice@example.org" sends a mail to "bob@forward.example.com" with subject "Minutes"
    Then "bob@example.net" receives no mail
    When 5 minutes pass
    Then "bob@example.net" receives no mail
    When 9 minutes pass
    Then "bob@example.net" receives no mail
    When 1 minute passes
    Then "bob@example.net" receives a mail from "alice@example.org" with subject "Minutes"
    And "alice@example.org" receives no mail

  Scenario: A host that is down for good: after 5 days the sender gets a delivery report
    Nothing is said while the relay keeps trying. The report comes with the first
    attempt after the lifetime is over: at most the longest retry interval, 4 hours,
    after it.

    Given the host "example.net" is down
    When "alice@example.org" sends a mail to "bob@forward.example.com" with subject "Anyone there?"
    And 4 days pass
    And 23 hours pass
    Then "alice@example.org" receives no mail
    When 5 hours pass
    Then "alice@example.org" receives a mail from "MAILER-DAEMON@forward.example.com" with subject "Undelivered Mail Returned to Sender"
      | header         | value            |
      | Content-Type   | multipart/report |
      | Auto-Submitted | auto-replied     |
      """
      <bob@example.net>: 421 4.4.1 mx.example.net: connection refused (delivery time expired)
      """
    And "bob@example.net" receives no mail

  Scenario: A host that comes back within the lifetime gets the mail, and nobody is told
    Given the host "example.net" is down
    When "alice@example.org" sends a mail to "bob@forward.example.com" with subject "Anyone there?"
    And 3 days pass
    Given the host "example.net" accepts mail
    When 4 hours pass
    Then "bob@example.net" receives a mail from "alice@example.org" with subject "Anyone there?"
    And "alice@example.org" receives no mail

  Scenario: A host that refuses: the sender is told at once
    Given the host "example.net" refuses mail
    When "alice@example.org" sends a mail to "bob@forward.example.com" with subject "Minutes"
    Then "alice@example.org" receives a mail from "MAILER-DAEMON@forward.example.com" containing "550 5.7.1 mail refused"
    And "bob@example.net" receives no mail

  Scenario: A report is retried like any mail
    Given the host "example.net" refuses mail
    And the host "example.org" is down
    When "alice@example.org" sends a mail to "bob@forward.example.com" with subject "Minutes"
    Then "alice@example.org" receives no mail
    Given the host "example.org" accepts mail
    When 5 minutes pass
    Then "alice@example.org" receives a mail from "MAILER-DAEMON@forward.example.com" containing "550 5.7.1 mail refused"

  Scenario: A report that cannot be delivered is not reported in turn
    The sender's host refuses the report. A report about the report (to the postmaster,
    say, whose mail the forwarder sends on to example.net, which refuses it, which
    would be reported…) would never end: the relay keeps the failed report, and
    nobody hears of it.

    Given the host "example.net" refuses mail
    And the host "example.org" refuses mail
    When "alice@example.org" sends a mail to "bob@forward.example.com" with subject "Minutes"
    And 6 days pass
    Then "alice@example.org" receives no mail
