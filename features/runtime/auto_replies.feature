Feature: Automatic answers follow RFC 3834
  An application answers automatically with relay.reply, and the runtime decides
  whether it may: never to a bounce (<>), never to mail that is itself automatic
  (Auto-Submitted), never to list or bulk mail. Its own answers say
  "Auto-Submitted: auto-replied" and belong to the thread they answer, so that other
  responders leave them alone and no two responders ever answer each other for ever.

  The responder app answers every mail to support@; what the runtime does not let
  it answer, it keeps in its "unanswered" queue with the reason.

  Background:
    Given the application in "apps/responder"

  Scenario: A person gets an automatic answer, marked as one and threaded
    When "alice@example.org" sends a mail to "support@responder.example.com" with subject "Printer on fire"
    Then "alice@example.org" receives a mail from "support@responder.example.com" with subject "Re: Printer on fire"
      | header         | value               |
      | Auto-Submitted | auto-replied        |
      | In-Reply-To    | mailsim@example.org |
      | References     | mailsim@example.org |

  @world
  Scenario: The answer goes to the Reply-To address
    When "alice@example.org" sends a mail to "support@responder.example.com" with subject "For Bob"
      | header   | value           |
      | Reply-To | bob@example.org |
    Then "bob@example.org" receives a mail from "support@responder.example.com" with subject "Re: For Bob"
    And "alice@example.org" receives no mail

  Scenario Outline: Mail that is not automatic is answered: <header>: <value>
    When "alice@example.org" sends a mail to "support@responder.example.com" with subject "Hello"
      | header   | value   |
      | <header> | <value> |
    Then "alice@example.org" receives a mail from "support@responder.example.com" with subject "Re: Hello"

    Examples:
      | header         | value       |
      | Auto-Submitted | no          |
      | Precedence     | first-class |

  @world
  Scenario Outline: Automatic, list and bulk mail is not answered: <header>: <value>
    When "alice@example.org" sends a mail to "support@responder.example.com" with subject "Newsletter"
      | header   | value   |
      | <header> | <value> |
    Then "alice@example.org" receives no mail
    And the "unanswered" queue holds 1 mail
    And the "unanswered" queue holds a mail from "alice@example.org"

    Examples:
      | header           | value                                     |
      | Auto-Submitted   | auto-generated                            |
      | Auto-Submitted   | auto-replied                              |
      | Auto-Submitted   | auto-notified; owner-email="a@example.org" |
      | Precedence       | bulk                                      |
      | Precedence       | list                                      |
      | Precedence       | junk                                      |
      | List-Id          | <news.lists.example.org>                  |
      | List-Unsubscribe | <mailto:news-leave@lists.example.org>     |

  @world
  Scenario: A bounce is never answered
    The answer to bob cannot be delivered: his own host bounces it, from the null
    sender, back to support@, where it must not be answered in turn.

    Given the host "example.net" bounces mail to "bob@example.net"
    When "bob@example.net" sends a mail to "support@responder.example.com" with subject "Hello"
    Then "bob@example.net" receives no mail
    And the "unanswered" queue holds a mail from "MAILER-DAEMON@example.net"
    And "MAILER-DAEMON@example.net" receives no mail

  @world
  Scenario: Two responders do not answer each other
    Bob is away, and his vacation responder follows RFC 3834 too: it leaves our
    automatic answer alone, so there is nothing for us to answer in turn.

    Given "bob@example.net" is away
      """
      Back on Monday.
      """
    When "bob@example.net" sends a mail to "support@responder.example.com" with subject "Question"
    Then "bob@example.net" receives a mail from "support@responder.example.com" with subject "Re: Question"
    And "bob@example.net" receives no mail
    And the "unanswered" queue holds no mail

  Scenario: The responder's templates are spelled right, and it relays for nobody
    Then every template is spelled correctly
    And the server is not an open relay
