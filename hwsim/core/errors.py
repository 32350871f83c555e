"""The one error type for bad user input, shared by the API and the CLI."""


class InputError(Exception):
    """Bad user input: the message names the file, key or option and what was expected.

    Raised anywhere in the API; the CLI prints it without a traceback and exits with
    ``ExitCode.BAD_INPUT`` (2).
    """
