"""Datasets and the workspace that stores them (zarr pixel batches, xarray tables)."""
