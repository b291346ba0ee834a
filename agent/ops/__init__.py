"""The operations tool (`edge-agent ops`): sign and push documents, watch, verify (central side)."""
