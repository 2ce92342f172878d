"""Semantic segmentation: per-pixel categories with MANet, DeepLabV3 and UNet (segmentation-models-pytorch)."""
