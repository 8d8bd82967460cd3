"""The one kind of failure every layer agrees on: one that no retry can fix."""


class PermanentError(Exception):
    """A setting, a missing model, a wrong database, a refused deletion: retrying gives the same answer.

    Dagster does not retry it, and the command line says it in one line, without a traceback.
    """
