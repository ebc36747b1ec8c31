Feature: Choosing the application
  A scenario runs the app of the mailsim.toml at or above its feature file, or the one
  it names. These features live outside any project, so each one names its app.

  Scenario: A project named relative to the feature file
    Given the application in "apps/echo"
    When "alice@example.org" sends a mail to "echo@echo.example.com" with subject "Ping"
    Then "alice@example.org" receives a mail from "echo@echo.example.com" with subject "Re: Ping"

  Scenario: A project named relative to the current folder
    Given the application in "examples/mailinglist"
    When "alice@example.org" sends a mail to "python-subscribe@lists.example.com"
    Then "alice@example.org" receives a mail from "python-confirm-.*@lists.example.com"

  Scenario: The application is chosen before anything happens
    Given the application in "apps/echo"
    When "alice@example.org" sends a mail to "echo@echo.example.com"
    Then this step fails:
      """
      Given the application in "examples/mailinglist"
      """
    And the failure says:
      """
      the application is chosen before anything happens: put Given the application in … first
      """
    And "alice@example.org" receives a mail from "echo@echo.example.com"

  Scenario: A folder that is not a project
    Then this step fails:
      """
      Given the application in "apps"
      """
    And the failure says:
      """
      has no mailsim.toml: it is not a mailsim project
      """

  Scenario: A folder that is nowhere
    Then this step fails:
      """
      Given the application in "apps/nowhere"
      """
    And the failure says:
      """
      no folder 'apps/nowhere' in
      """

  Scenario: Mail may go unexamined when the scenario says so
    Given the application in "apps/echo"
    And mail may go unexamined
    When "alice@example.org" sends a mail to "echo@echo.example.com"

  @loose
  Scenario: Mail may go unexamined in a scenario tagged @loose
    Given the application in "apps/echo"
    When "alice@example.org" sends a mail to "echo@echo.example.com"
