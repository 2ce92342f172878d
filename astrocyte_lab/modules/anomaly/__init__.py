"""Anomaly detection: trained on Normal images only, scores and heatmaps from anomalib's PatchCore, PaDiM and DFM."""
