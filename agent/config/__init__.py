"""The agent's configuration: the TOML models, paths, credentials, which sections a role owns."""
