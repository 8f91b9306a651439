"""Gateways that dial in: DTUs that connect to houqin, name themselves and then carry a bus's frames."""
