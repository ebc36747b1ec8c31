Feature: Safety
  Templates are spelled right, and the server relays nobody's mail.

  Scenario: The echo's templates, with the project's words
    Given the application in "apps/echo"
    Then every template is spelled correctly
    And the server is not an open relay

  Scenario: More words for one check, in a docstring
    Given the application in "apps/careless"
    Then every template is spelled correctly, knowing these words:
      """
      sincerly
      """
