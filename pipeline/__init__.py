"""callqa: self-hosted quality inspection and speech analytics for call centres."""

__version__ = "0.1.0"
