"""The patrol device role: pure core in `core/`, its driver, devices, persistence and local API."""
