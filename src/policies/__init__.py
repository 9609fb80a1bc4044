"""Decide: Casbin policies, purposes, licences, embargoes and agreements, producing Decisions."""
