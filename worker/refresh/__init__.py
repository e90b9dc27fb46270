"""Model refresh: re-fit k-means on the customers as they are now, keep segment ids stable."""
