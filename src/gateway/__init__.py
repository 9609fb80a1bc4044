"""Serve: settings, identity, the HTTP app, federation, the CLI and the Python client."""
