"""One module per probe kind, each a class behind the `Probe` protocol of `base`."""
