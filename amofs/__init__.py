"""amofs: an amoCRM account's file store, mounted as a folder."""

__version__ = "0.1.0"
