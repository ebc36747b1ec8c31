Feature: Misspelled templates are reported where they are
  Every template of the app is spell checked: text and HTML, with Jinja, markup,
  addresses, links and code left out. The project's own words come from words.txt
  beside its mailsim.toml. A misspelling is reported as file:line: word → suggestions.

  Scenario: Each misspelled word, with its file, its line and suggestions
    The templates also write "recieve" where it is not prose — in Jinja, a link, code,
    an address, a class name, a <pre> block — and there it is not reported.

    Given the application in "apps/typos"
    Then this step fails:
      """
      Then every template is spelled correctly
      """
    And the failure says:
      """
      2 misspelled words (or missing from the word list):
      typos/templates/notice.txt:3: mesage → message
      typos/templates/page.html:4: adress → address
      """

  Scenario: Words given with the step are known, and so are the project's
    Given the application in "apps/typos"
    Then every template is spelled correctly, knowing these words:
      """
      mesage adress
      """
