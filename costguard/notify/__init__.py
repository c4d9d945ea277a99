"""Delivery of finding changes to receivers. This version ships the console receiver."""
