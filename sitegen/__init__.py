"""sitegen: a static archive site generator for LLM benchmark runs."""

__version__ = "0.1.0"
