"""obsctl: the observability and SRE operations bundle for the image-task platform."""

__version__ = "0.1.0"
