"""The list's own shorthand, made of mailsim's steps: being a member already."""

from behave import given


def _join(context, person):
    context.execute_steps(
        f'''
        When "{person}" sends a mail to "python-subscribe@lists.example.com"
        Then "{person}" receives a mail with subject "Please confirm: subscribe to python"
        When "{person}" replies to the last mail
        Then "{person}" receives a mail with subject "Welcome to python"
        '''
    )


@given('"{person}" is a member')
def is_a_member(context, person):
    _join(context, person)


@given('"{first}" and "{second}" are members')
def are_members(context, first, second):
    _join(context, first)
    _join(context, second)
