"""`python -m firmware_bridge.sim.gps`: run the GPS simulator on a pty (see gps_sim)."""

from firmware_bridge.sim.gps_sim import main

if __name__ == "__main__":
    main()
