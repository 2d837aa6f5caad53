"""``python -m nst_jax``: neural style transfer from the command line (one image, a weight sweep, or ``--batch``)."""

from nst_jax.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
