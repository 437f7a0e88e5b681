"""The one base of every error a user can fix by changing what they typed or configured."""


class SageError(Exception):
    """The one-line, names-the-fix errors the CLI prints and exits 2 on.

    Subclasses keep their builtin base too (`class CorpusError(SageError, ValueError)`), so library callers
    that catch `ValueError` or `LookupError` still do. Raise one for bad input only; a bug stays a bug.
    """
