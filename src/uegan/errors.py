"""Exceptions that describe a user's mistake (a missing file, a bad value).

The command-line interface prints their message in one line, without a traceback; library
callers can catch them like any other exception.
"""


class UserError(Exception):
    """A problem the user can fix: the message says what is wrong and how to fix it."""
