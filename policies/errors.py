"""The error raised for a policy that cannot be found, read or validated."""

from __future__ import annotations


class PolicyError(Exception):
    """A policy file is missing, unreadable or invalid; the message names the file, the field and the problem."""
