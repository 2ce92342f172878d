"""Module implementations: anomaly, classification, detection, segmentation."""
