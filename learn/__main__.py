"""``python -m learn ...`` is the ``learn`` command; what ``torchrun -m learn train ...`` starts per process."""

from cli import learn_group

if __name__ == "__main__":
    learn_group(prog_name="learn")
