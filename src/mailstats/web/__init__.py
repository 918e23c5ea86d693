"""The HTTP side of mailstats: the v2 API, tracking endpoints and their shared parsing."""
