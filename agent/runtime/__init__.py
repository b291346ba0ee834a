"""Running one agent: its wiring, the run loop, the supervisor of its loops, status, systemd."""
