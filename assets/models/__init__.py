"""The models layer's assets (group `models`)."""
