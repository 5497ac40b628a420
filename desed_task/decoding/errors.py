"""The exception types raised for bad decoding and evaluation input (scores, tables, the
per-class values and post-processing files); the evaluation floor raises them too."""

from desed_task.errors import UserError


class EvaluationInputError(UserError, ValueError):
    """Raised when an input table or array cannot be decoded or evaluated.

    The message always names the source (a file path, or a description of the
    in-memory table) and the problem, e.g. ``"predictions.tsv: 3 rows have
    offset < onset (first: row 7)"``. A ValueError too, as it was before ``UserError``.
    """


class ClassValuesError(EvaluationInputError):
    """A per-class values file that cannot be used (the message names the file and the fix);
    an EvaluationInputError, so that the command lines report it as bad input."""


class PostProcessingError(ClassValuesError):
    """A post-processing file that cannot be used (the message names the file, the key and the fix)."""
