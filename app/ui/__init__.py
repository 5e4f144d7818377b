"""The web memory browser (/ui): server-rendered pages over the same services as the API."""
