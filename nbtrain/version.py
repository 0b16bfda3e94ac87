"""The package version, in one place (the model files and the command line record it)."""
__version__ = "0.1.0"
