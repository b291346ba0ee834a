"""`edge-agent` subcommands that are not a tool of their own: check-config, config, provision."""
