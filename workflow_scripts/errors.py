"""The base of every error a user can fix (bad config, data or model): cli.run reports it as one line, while any
other exception, a bug, keeps its traceback in the job's log."""


class UserError(ValueError):
    """The message names the key, file, language or model at fault and what to do."""
