Feature: The one-shot blog
  Anyone can publish a web page by mail: the subject is its title, the text is
  the post. A new author confirms their first post; after that every mail to
  post@ is published at once. Readers comment by mail, confirming their address
  the first time, and the author hears of each comment. The front page is built
  in the background, from jobs the handlers queue.

  The scenarios run in the simulated world (`mailsim run`) and against a real
  server (`mailsim run --live HOST:PORT --tags "not @world"`); those tagged @world
  move the clock or read the web site's files, which only the world can do.

  Scenario: A first post needs a confirmation
    When "alice@example.org" sends a mail to "post@blog.example.com" with subject "Hello world"
      """
      This is my very first post.
      """
    Then "alice@example.org" receives a mail from "post-confirm-.*@blog.example.com" with subject "Please confirm your first post: Hello world"
    And "alice@example.org" is in state "CONFIRMING" of "app.handlers.posts"

  Scenario: Confirming publishes the post
    When "alice@example.org" sends a mail to "post@blog.example.com" with subject "Hello world"
    Then "alice@example.org" receives a mail containing "To publish it, reply to this message"
    When "alice@example.org" replies to the last mail
    Then "alice@example.org" receives a mail from "noreply@blog.example.com" with subject "Published: Hello world" containing "http://blog.example.com/hello-world"
    And "alice@example.org" is in state "POSTING" of "app.handlers.posts"

  Scenario: A wrong confirmation address does nothing
    When "alice@example.org" sends a mail to "post@blog.example.com" with subject "Hello world"
    Then "alice@example.org" receives a mail with subject "Please confirm your first post"
    When "alice@example.org" sends a mail to "post-confirm-0000@blog.example.com"
    Then "alice@example.org" receives no mail
    And "alice@example.org" is in state "CONFIRMING" of "app.handlers.posts"

  Scenario: After the first post, every post is published at once
    Given "alice@example.org" has published "Hello world"
    When "alice@example.org" sends a mail to "post@blog.example.com" with subject "Day two"
    Then "alice@example.org" receives a mail with subject "Published: Day two" containing "http://blog.example.com/day-two"

  Scenario: A comment needs a confirmation, and the author hears of it
    Given "alice@example.org" has published "Hello world"
    When "bob@example.org" sends a mail to "${comment address}" with subject "Nice"
      """
      Lovely post, Alice.
      """
    Then "bob@example.org" receives a mail from "comment-\d+-confirm-.*@blog.example.com" with subject "Please confirm your comment on Hello world"
    And "bob@example.org" is in state "CONFIRMING" of "app.handlers.comments"
    And "alice@example.org" receives no mail
    When "bob@example.org" replies to the last mail
    Then "bob@example.org" receives a mail with subject "Your comment on Hello world"
    And "alice@example.org" receives a mail from "noreply@blog.example.com" with subject "New comment on Hello world" containing "Lovely post, Alice."
    And "bob@example.org" is in state "COMMENTING" of "app.handlers.comments"

  Scenario: A confirmed commenter's comments appear at once
    Given "alice@example.org" has published "Hello world"
    When "bob@example.org" sends a mail to "${comment address}"
    Then "bob@example.org" receives a mail with subject "Please confirm your comment"
    When "bob@example.org" replies to the last mail
    Then "bob@example.org" receives a mail with subject "Your comment on Hello world"
    And "alice@example.org" receives a mail with subject "New comment on Hello world"
    When "bob@example.org" sends a mail to "${comment address}" with subject "More" and body "One more thing."
    Then "bob@example.org" receives a mail with subject "Your comment on Hello world"
    And "alice@example.org" receives a mail with subject "New comment on Hello world" containing "One more thing."

  Scenario: A comment on a post that does not exist
    When "bob@example.org" sends a mail to "comment-999999@blog.example.com"
    Then "bob@example.org" receives a mail with subject "No post 999999"
    And "bob@example.org" is in state "START" of "app.handlers.comments"

  Scenario: The author deletes a post
    Given "alice@example.org" has published "Hello world"
    When "alice@example.org" sends a mail to "${delete address}"
    Then "alice@example.org" receives a mail with subject "Deleted: Hello world"
    When "bob@example.org" sends a mail to "${comment address}"
    Then "bob@example.org" receives a mail with subject "No post"

  Scenario: Nobody else can delete it
    Given "alice@example.org" has published "Hello world"
    When "mallory@example.net" sends a mail to "${delete address}"
    Then "mallory@example.net" receives a mail with subject "Not deleted: Hello world" containing "only its author can delete"
    And "alice@example.org" receives no mail

  Scenario: The blog is safe to run
    Then every template is spelled correctly
    And the server is not an open relay

  @world
  Scenario: A confirmation expires after three days
    Given "alice@example.org" has published "Hello world"
    When "bob@example.org" sends a mail to "${comment address}"
    Then "bob@example.org" receives a mail with subject "Please confirm your comment"
    When 3 days pass
    And "bob@example.org" replies to the last mail
    Then "bob@example.org" receives no mail
    And "alice@example.org" receives no mail
    And "bob@example.org" is in state "CONFIRMING" of "app.handlers.comments"

  @world
  Scenario: The page shows the post, escaped
    When "alice@example.org" sends a mail to "hello-post@blog.example.com" with subject "Tips & tricks"
      """
      Try this: <script>alert("owned")</script>
      """
    Then "alice@example.org" receives a mail with subject "Please confirm your first post"
    When "alice@example.org" replies to the last mail
    Then "alice@example.org" receives a mail with subject "Published: Tips & tricks" containing "http://blog.example.com/hello.html"
    And the page "hello.html" shows "<h1>Tips &amp; tricks</h1>"
    And the page "hello.html" shows "Try this: &lt;script&gt;"
    And the page "hello.html" does not show "<script>"

  @world
  Scenario: The index is built in the background
    Given "alice@example.org" has published "Hello world"
    Then there is no page "index.html"
    When the index is built
    Then the page "index.html" shows "<a href="hello-world.html">Hello world</a>"
    When "alice@example.org" sends a mail to "${delete address}"
    Then "alice@example.org" receives a mail with subject "Deleted: Hello world"
    And there is no page "hello-world.html"
    When the index is built
    Then the page "index.html" shows "Nothing has been published yet."
