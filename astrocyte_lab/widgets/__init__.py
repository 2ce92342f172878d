"""Notebook user interface: the App and its panels (ipywidgets, ipycanvas, bqplot) over the engine."""
