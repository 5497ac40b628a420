"""``python -m desed_task.embeddings``: see desed_task/embeddings/cli.py."""

from desed_task.embeddings.cli import main

if __name__ == "__main__":
    main()
