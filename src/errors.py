"""One exception type for mistakes a user can fix, so the CLI can show them without a traceback."""


class UserInputError(ValueError):
    """Bad configuration, arguments or data; the message says what was wrong and how to fix it."""
