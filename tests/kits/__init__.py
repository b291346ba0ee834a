"""Test helper kits: agents, brokers, serial devices, patrol and vision rigs (no tests)."""
