"""Checks that the watched platform gives obsctl what it needs (`obsctl check db|app`)."""
