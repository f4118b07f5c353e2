"""Local stand-ins for the SaaS the platform talks to, speaking their real protocols."""
