Feature: Time and remote hosts
  The echo answers people at example.net; how that host behaves decides when, and
  whether, its answers arrive. The relay retries after 5 minutes, then 10, then 20…

  Background:
    Given the application in "apps/echo"

  Scenario: A host that is down gets the mail when it is back
    Given the host "example.net" is down
    When "bob@example.net" sends a mail to "echo@echo.example.com" with subject "Ping"
    Then "bob@example.net" receives no mail
    Given the host "example.net" accepts mail
    When 10 minutes pass
    Then "bob@example.net" receives a mail with subject "Re: Ping"

  Scenario: A host that defers twice
    Given the host "example.net" defers mail 2 times
    When "bob@example.net" sends a mail to "echo@echo.example.com" with subject "Ping"
    And 6 minutes pass
    Then "bob@example.net" receives no mail
    When 1 hour passes
    Then "bob@example.net" receives a mail with subject "Re: Ping"

  Scenario: A host that defers until told otherwise
    Given the host "example.net" defers mail
    When "bob@example.net" sends a mail to "echo@echo.example.com" with subject "Ping"
    And 2 hours pass
    Then "bob@example.net" receives no mail

  Scenario: A host that greylists
    Given the host "example.net" greylists mail
    When "bob@example.net" sends a mail to "echo@echo.example.com" with subject "Ping"
    Then "bob@example.net" receives no mail
    When 600 seconds pass
    Then "bob@example.net" receives a mail with subject "Re: Ping"

  Scenario: A host that refuses: the app gets the bounce
    Given the host "example.net" refuses mail
    When "bob@example.net" sends a mail to "echo@echo.example.com" with subject "Ping"
    Then "bob@example.net" receives no mail
    And "owner@example.org" receives a mail with subject "Undeliverable" containing "mail refused"

  Scenario: A host that bounces one address later
    Given the host "example.net" bounces mail to "bob@example.net"
    When "bob@example.net" sends a mail to "echo@echo.example.com" with subject "Ping"
    Then "owner@example.org" receives a mail with subject "Undeliverable" containing "bob@example.net"
    And "bob@example.net" receives no mail

  Scenario: A host that gives up: the relay bounces when the lifetime ends
    Given the host "example.net" is down
    When "bob@example.net" sends a mail to "echo@echo.example.com" with subject "Ping"
    And 1 week passes
    Then "owner@example.org" receives a mail with subject "Undeliverable"
    And "bob@example.net" receives no mail

  Scenario: Somebody away answers automatically
    Given "bob@example.net" is away
      """
      Back on Monday.
      """
    When "alice@example.org" sends a mail to "bob@example.net" with subject "Lunch?"
    Then "bob@example.net" receives a mail from "alice@example.org" with subject "Lunch?"
    And "alice@example.org" receives a mail from "bob@example.net" containing "Back on Monday."
