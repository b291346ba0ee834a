"""The operations centre's readers of the archive: the day's patrol report and the alerts."""
