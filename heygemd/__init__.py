"""heygemd: a watched-folder lip-sync daemon."""

__version__ = "0.1.0"
