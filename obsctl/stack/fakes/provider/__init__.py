"""Fake of an external AI image provider with an asynchronous task API."""
