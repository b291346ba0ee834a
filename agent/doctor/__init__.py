"""`edge-agent doctor`: on-site checks with a pass/warn/fail verdict and a fix for each failure."""
