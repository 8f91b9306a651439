"""Prepaid dorm electricity: tariffs priced over time, the room ledger, billing from the meters."""
