"""The campus inventory: ``devices.yaml`` validated into an ``Inventory``."""

from houqin.inventory.inventory import Inventory
from houqin.inventory.loader import load_inventory, load_shipped_profiles

__all__ = ["Inventory", "load_inventory", "load_shipped_profiles"]
