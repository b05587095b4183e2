"""The package's version (a leaf module: any layer may read it without importing upward)."""

__version__ = "0.1.0"
