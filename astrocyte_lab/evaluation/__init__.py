"""Testing trained models: metrics, predictions written back to datasets, heatmaps."""
