"""The rules engine and the shipped rule set (``rules/*.yaml``): readings in, faults and repair orders out.
Imports only ``houqin``."""
