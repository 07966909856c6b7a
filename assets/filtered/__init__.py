"""The filtered layer's assets (group `filtered`)."""
