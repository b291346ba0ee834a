"""The companion page: the patrol device's screen on the worker's phone (docs/companion.md)."""
