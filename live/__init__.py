"""Driving a person model: frame sources, retargeting, renderers and export, the driver, sinks."""
