"""The release version (semantic versioning; CHANGELOG.md at the root says what each one changed)."""
__version__ = "0.3.0"
