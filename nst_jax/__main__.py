"""``python -m nst_jax CONTENT STYLE [STYLE ...] -o OUT``: neural style transfer from the command line."""

from nst_jax.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
