"""`edge-agent ops archive`: every fleet message written once into SQLite or PostgreSQL."""
