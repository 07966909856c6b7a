"""The silver layer's assets (group `silver`)."""
