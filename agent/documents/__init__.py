"""Downlink documents (§6): the appliers, the remote config's staging, work modes, what is kept."""
