"""Drills: inject a real fault, prove the alert fires and the notifications arrive, restore."""
