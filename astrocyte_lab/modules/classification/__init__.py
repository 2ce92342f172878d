"""Image classification: regular and continual learning."""
