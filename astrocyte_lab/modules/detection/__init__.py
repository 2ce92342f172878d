"""Object detection: axis-aligned and rotated boxes with Ultralytics YOLO (AGPL-3.0), tiling, self-training."""
