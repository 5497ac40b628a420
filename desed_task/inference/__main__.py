"""``python -m desed_task.inference``: see desed_task/inference/cli.py."""

from desed_task.inference.cli import main

if __name__ == "__main__":
    main()
