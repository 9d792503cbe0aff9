"""A run's folder: its file names, the checkpoint format, resuming, and the network's fingerprint."""
