Feature: The server relays nobody's mail
  Whether to take mail for an address is decided on the recipient alone (RFC 2505),
  never on who claims to send it: only the app's own domains, only the addresses a
  route takes there. The 16 probes of nmap's smtp-open-relay script try to get mail
  for a foreign domain taken anyway — the percent hack, source routes, bang paths,
  quoted local parts, IP literals — and every one must be refused.

  Scenario: An app with exact routes refuses every probe
    Given the application in "apps/responder"
    Then the server is not an open relay

  @world
  Scenario: An app with a catch-all route on its own domain refuses every probe too
    The forwarder takes any name at forward.example.com. The percent hack and the bang
    path put the foreign domain in a name at forward.example.com, and are still refused.

    Given the application in "apps/forwarder"
    Then the server is not an open relay

  @world
  Scenario: An app that takes mail for a domain not its own is reported as an open relay
    The careless app lists the probes' foreign domain among its own, and takes
    anything there.

    Given the application in "apps/careless"
    Then this step fails:
      """
      Then the server is not an open relay
      """
    And the failure says:
      """
      the server is an open relay: it accepted 4 of 16 probes
      ACCEPTED  MAIL FROM:<> RCPT TO:<u@relay-probe.mailsim.invalid>  ->  250 accepted
      ACCEPTED  MAIL FROM:<u@relay-probe.mailsim.invalid> RCPT TO:<u@relay-probe.mailsim.invalid>  ->  250 accepted
      ACCEPTED  MAIL FROM:<u@careless.example.com> RCPT TO:<u@relay-probe.mailsim.invalid>  ->  250 accepted
      ACCEPTED  MAIL FROM:<u@[127.0.0.1]> RCPT TO:<u@relay-probe.mailsim.invalid>  ->  250 accepted
      refused   MAIL FROM:<u@[127.0.0.1]> RCPT TO:<u%relay-probe.mailsim.invalid@careless.example.com>
      refused   MAIL FROM:<u@[127.0.0.1]> RCPT TO:<relay-probe.mailsim.invalid!u@careless.example.com>
      refused   MAIL FROM:<u@[127.0.0.1]> RCPT TO:<@careless.example.com:u@relay-probe.mailsim.invalid>
      OPEN RELAY: 4 probes accepted
      """
