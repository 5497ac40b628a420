"""``python -m desed_task.data_generation.demo --root data/demo``: build the demo dataset."""

from desed_task.data_generation.demo.dataset import main

if __name__ == "__main__":
    main()
