"""``python -m convert_weights``: write nst_jax's VGG HDF5 from torchvision, a weights file, the package registry, or a
random init."""

from convert_weights.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
