"""The one kind of error that is the user's, not the program's.

``UserError`` (a ``ValueError``) is raised for bad input: an option out of
range, a file that cannot be used, a request the network cannot satisfy. The
``dpap`` command line prints its message as one ``dpap: error: ...`` line and
exits with status 2. Any other exception is a bug: the command line shows its
traceback and says so (docs/DESIGN.md, section 1).
"""

from __future__ import annotations


class UserError(ValueError):
    """An error the user caused (bad input, option or file): the CLI prints its one-line message and exits with status 2."""
