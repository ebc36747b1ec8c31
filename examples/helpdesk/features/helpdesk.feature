@world
Feature: The help desk
  A customer writes to support@help.example.com and gets a ticket with an address
  of its own. The agents hear about every new ticket; one of them takes it, and
  from then on the customer and that agent write to each other through the
  ticket's address without ever seeing each other's. When the agent resolves
  the ticket, the customer is asked how we did; the manager hears about bad
  ratings, and about tickets that wait too long.

  These scenarios run in the simulated world (@world): each begins with a desk of
  its own, whose tickets are numbered from 1 and whose agents and manager are the
  people mailsim.toml names. Against a live server neither holds (every scenario
  there writes from addresses of its own, and the server numbers tickets as they
  come), and the escalation scenarios move the clock, which only the world can do.

  Background:
    Given the application in "examples/helpdesk"

  Scenario: A question becomes a ticket that every agent hears about
    When "alice@example.org" sends a mail to "support@help.example.com" with subject "Printer on fire"
      """
      The printer smokes when I print.
      """
    Then "alice@example.org" receives a mail from "ticket-1@help.example.com" with subject "[Ticket #1] Printer on fire"
    And its sender is kept as "ticket"
    And "agent1@staff.example.org" receives a mail from "${ticket}" with subject "[Ticket #1] Printer on fire" containing "The printer smokes when I print."
    And "agent2@staff.example.org" receives a mail from "${ticket}" containing "ticket-1-claim@help.example.com"
    And "manager@staff.example.org" receives no mail

  Scenario: An agent takes the ticket, and then nobody else can
    Given "alice@example.org" has opened ticket 1 about "Printer on fire"
    When "agent1@staff.example.org" sends a mail to "ticket-1-claim@help.example.com"
    Then "agent1@staff.example.org" receives a mail from "ticket-1@help.example.com" with subject "[Ticket #1] It is yours"
    And "alice@example.org" receives a mail from "ticket-1@help.example.com" with subject "An agent is on it"
    And "agent1@staff.example.org" is in state "ASSIGNED" of "app.handlers.helpdesk"
    When "agent2@staff.example.org" sends a mail to "ticket-1-claim@help.example.com"
    Then "agent2@staff.example.org" receives a mail with subject "[Ticket #1] Already taken" containing "agent1@staff.example.org"
    And "alice@example.org" receives no mail
    And "agent2@staff.example.org" is in state "ASSIGNED" of "app.handlers.helpdesk"

  Scenario: The customer and the agent talk through the ticket's address
    Given "alice@example.org" has opened ticket 1 about "Printer on fire"
    When "agent1@staff.example.org" replies to the last mail
      """
      Which model is it?
      """
    Then "agent1@staff.example.org" receives a mail with subject "It is yours"
    And "alice@example.org" receives a mail from "ticket-1@help.example.com" with subject "Re: [Ticket #1] Printer on fire" containing "Which model is it?"
    And "agent1@staff.example.org" is in state "WAITING_CUSTOMER" of "app.handlers.helpdesk"
    When "alice@example.org" replies to the last mail
      """
      A LaserJet 4.
      """
    Then "agent1@staff.example.org" receives a mail from "ticket-1@help.example.com" containing "A LaserJet 4."
    And "alice@example.org" is in state "WAITING_AGENT" of "app.handlers.helpdesk"
    And "agent2@staff.example.org" receives no mail

  Scenario: A resolved ticket rated good is closed
    Given "alice@example.org" has opened ticket 1 about "Printer on fire"
    And "agent1@staff.example.org" has answered it saying "Unplug it for a minute."
    When "agent1@staff.example.org" sends a mail to "ticket-1-resolve@help.example.com"
    Then "agent1@staff.example.org" receives a mail with subject "[Ticket #1] Resolved"
    And "alice@example.org" receives a mail from "ticket-1@help.example.com" with subject "[Ticket #1] How did we do?" containing "ticket-1-rate-good@help.example.com"
    When "alice@example.org" sends a mail to "ticket-1-rate-good@help.example.com"
    Then "alice@example.org" receives a mail with subject "[Ticket #1] Thank you"
    And "alice@example.org" is in state "CLOSED" of "app.handlers.helpdesk"
    And "manager@staff.example.org" receives no mail

  Scenario: A bad rating opens the ticket again and tells the manager
    Given "alice@example.org" has opened ticket 1 about "Printer on fire"
    And "agent1@staff.example.org" has answered it saying "Unplug it for a minute."
    When "agent1@staff.example.org" sends a mail to "ticket-1-resolve@help.example.com"
    Then "agent1@staff.example.org" receives a mail with subject "Resolved"
    And "alice@example.org" receives a mail with subject "How did we do?"
    When "alice@example.org" sends a mail to "ticket-1-rate-bad@help.example.com" with subject "Bad"
      """
      It is still smoking.
      """
    Then "alice@example.org" receives a mail with subject "[Ticket #1] We are sorry"
    And "manager@staff.example.org" receives a mail from "ticket-1@help.example.com" with subject "[Ticket #1] Rated bad" containing "It is still smoking."
    And "agent1@staff.example.org" receives a mail with subject "[Ticket #1] Open again" containing "It is still smoking."
    And "alice@example.org" is in state "WAITING_AGENT" of "app.handlers.helpdesk"
    When "manager@staff.example.org" replies to the last mail
    Then "manager@staff.example.org" receives a mail with subject "[Ticket #1] It is yours"
    And "agent1@staff.example.org" receives a mail with subject "[Ticket #1] Taken over by the manager"
    And "alice@example.org" receives no mail

  Scenario: A stranger cannot write to someone else's ticket
    Given "alice@example.org" has opened ticket 1 about "Printer on fire"
    When "mallory@example.org" sends a mail to "ticket-1@help.example.com" with subject "Let me in"
    Then "mallory@example.org" receives a mail from "ticket-1@help.example.com" with subject "[Ticket #1] Not your ticket"
    And "alice@example.org" receives no mail
    And "agent1@staff.example.org" receives no mail
    When "mallory@example.org" sends a mail to "ticket-1-claim@help.example.com"
    Then "mallory@example.org" receives a mail with subject "Not your ticket"
    And "mallory@example.org" is in state "NEW" of "app.handlers.helpdesk"

  Scenario: Mail to a ticket that does not exist is answered, not passed on
    When "mallory@example.org" sends a mail to "ticket-42@help.example.com" with subject "Hello?"
    Then "mallory@example.org" receives a mail from "ticket-42@help.example.com" with subject "No ticket #42" containing "support@help.example.com"
    And "agent1@staff.example.org" receives no mail

  Scenario: Addresses no route takes are refused
    When "alice@example.org" sends a mail to "ticket-1-delete@help.example.com"
    Then "alice@example.org" receives a mail from "MAILER-DAEMON@example.org" containing "ticket-1-delete@help.example.com"

  Scenario: The desk is safe to run
    Then every template is spelled correctly
    And the server is not an open relay

  Scenario: A ticket nobody takes is escalated to the manager, once
    Given "alice@example.org" has opened ticket 1 about "Printer on fire"
    When 3 hours pass
    And the desk checks for overdue tickets
    Then "manager@staff.example.org" receives no mail
    When 1 hour passes
    And the desk checks for overdue tickets
    Then "manager@staff.example.org" receives a mail from "ticket-1@help.example.com" with subject "[Ticket #1] Nobody has taken it"
    When 5 hours pass
    And the desk checks for overdue tickets
    Then "manager@staff.example.org" receives no mail
    When "manager@staff.example.org" replies to the last mail
    Then "manager@staff.example.org" receives a mail with subject "[Ticket #1] It is yours"
    And "alice@example.org" receives a mail with subject "An agent is on it"

  Scenario: A customer left without an answer is escalated to the manager
    Given "alice@example.org" has opened ticket 1 about "Printer on fire"
    When "agent1@staff.example.org" sends a mail to "ticket-1-claim@help.example.com"
    Then "agent1@staff.example.org" receives a mail with subject "It is yours"
    And "alice@example.org" receives a mail with subject "An agent is on it"
    When 8 hours pass
    And the desk checks for overdue tickets
    Then "manager@staff.example.org" receives a mail with subject "[Ticket #1] The customer is waiting" containing "agent1@staff.example.org"
    And "agent1@staff.example.org" receives no mail
