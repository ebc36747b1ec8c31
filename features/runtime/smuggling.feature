@live
Feature: SMTP smuggling is refused (live only)
  SMTP smuggling ends a mail's data early with a line end that is not CRLF.CRLF, and
  writes a whole second mail behind it; a server that takes the fake end for the real
  one delivers the second mail, forged. The server refuses any bare CR or LF (and any
  NUL) in the data, so the whole transaction is refused — 550 5.6.0 — and nothing
  follows: no second mail, no answer to either.

  This happens on an SMTP connection, which the simulated world does not have: these
  scenarios run against a live server only, and are skipped in the world, saying so.

  Background:
    Given the application in "apps/responder"

  Scenario Outline: A mail smuggled behind <ending> is refused, and nothing follows
    When "alice@example.org" smuggles a mail to "support@responder.example.com" behind "<ending>"
    Then the server refuses the smuggled mail
    And "alice@example.org" receives no mail

    Examples: the endings of REFERENCE.md
      | ending       |
      | \n.\n        |
      | \r.\r        |
      | \r.\n        |
      | \n.\r        |
      | \n.\r\n      |
      | \r\n.\n      |
      | \r.\r\n      |
      | \r\n.\r      |
      | \r\n\0.\r\n  |
      | \r\n.\0\r\n  |
