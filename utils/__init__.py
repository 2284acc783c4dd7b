"""Small helpers shared by every package."""
