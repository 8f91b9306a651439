"""Energy management: classification totals, sub-items, intensities and the metering-tree balance."""
