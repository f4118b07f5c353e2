"""The dead man's switch: pages on-call when the alert path's Watchdog heartbeat stops."""
