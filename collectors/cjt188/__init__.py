"""CJ/T 188: water, heat and gas meters on RS-485 (frames, link, valve commands)."""
