"""Repair orders and the faults that open them: the work-order side of houqin."""
