"""The network: built-in names or the user's own, adapted to the data, pretrained weights, fine-tuning, summary."""
