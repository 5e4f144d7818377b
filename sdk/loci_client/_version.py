"""The one place the SDK version lives: pyproject reads it, and it goes into the User-Agent header."""

__version__ = "0.3.0"
