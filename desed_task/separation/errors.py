"""What opening a separation model raises when its file or folder is absent."""

from desed_task.errors import UserError


class ModelNotFound(UserError):
    """A separation model's file, folder or checkpoint is absent; the message names it and says
    how to get or convert the model."""
