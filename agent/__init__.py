"""Grid Edge agent: patrol device and camera gateway roles."""

__version__ = "0.1.0"
