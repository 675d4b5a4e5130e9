"""``python -m acam.learn ...`` is the ``learn`` command; what ``torchrun -m acam.learn train ...`` starts per process."""

from acam.cli import learn_group

if __name__ == "__main__":
    learn_group(prog_name="learn")
