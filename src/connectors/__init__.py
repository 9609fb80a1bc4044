"""Reach stores: the neutral Query and filter tree, and one connector module per kind of store."""
