"""Small helpers shared by several areas (device choice, ...)."""
