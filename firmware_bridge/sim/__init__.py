"""pty-backed device simulators shared by the tests and the demo.

- gps_sim.GpsSimulator: replays a capture at its epoch pace or walks along points with noise.
- pn532_sim.Pn532Simulator: answers like a PN532 in HSU mode and presents scripted tags.
- pty_port.PtyPort: the pty pair behind both, reached through a symlink that unplug/replug
  repoint (a pty cannot be reopened, so "the same device path comes back" is a new pty).

CLIs: `python -m firmware_bridge.sim.gps --help`, `python -m firmware_bridge.sim.pn532 --help`.
"""
