"""The one exceptions module.

`UserError` and its children are problems a person can fix (a setting, a file, a lock): the CLI
prints their message on one line with no traceback. Anything else is a bug and keeps its traceback.
"""


class JoinedUpError(Exception):
    """Base class for every error joinedup raises on purpose."""


class UserError(JoinedUpError):
    """A problem the user can act on; the message says what to do."""


class SettingsError(UserError):
    """A setting is missing or malformed."""


class PseudoKeyMissing(UserError):
    """A file holds NHS numbers but JOINEDUP_PSEUDO_KEY is not set."""


class DatabaseLocked(UserError):
    """Another joinedup process holds the database."""


class BadMonth(UserError):
    """A month argument is not YYYY-MM."""


class DisclosureError(UserError):
    """An unsuppressed small count would have been published."""


class MonthsFailed(UserError):
    """Months whose rebuild was rolled back (a blocking audit or an error); every other month
    was built, and the message names each failed month and why."""


class UnsafeOutputPath(UserError):
    """An output file's name is not a valid code, or would resolve outside the reports folder."""


class FileRejected(JoinedUpError):
    """A landing file is rejected whole; `rule` names the reason. Caught by the loader."""

    def __init__(self, rule: str, detail: str):
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail
