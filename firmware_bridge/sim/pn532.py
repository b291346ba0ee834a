"""`python -m firmware_bridge.sim.pn532`: run the PN532 simulator on a pty (see pn532_sim)."""

from firmware_bridge.sim.pn532_sim import main

if __name__ == "__main__":
    main()
