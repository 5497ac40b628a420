"""The one exception type raised for bad evaluation input."""

from desed_task.errors import UserError


class EvaluationInputError(UserError):
    """Raised when an input table or array cannot be evaluated.

    The message always names the source (a file path, or a description of the
    in-memory table) and the problem, e.g. ``"predictions.tsv: 3 rows have
    offset < onset (first: row 7)"``.
    """
