"""pullgate: verify every image a node pulls against the platform team's signing policy."""

__version__ = "0.1.0"
