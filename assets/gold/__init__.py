"""The gold layer's assets (group `gold`)."""
