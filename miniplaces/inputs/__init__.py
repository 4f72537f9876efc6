"""Provisioning the inputs: the Places365 weights, the scenes, bounded reads of user files."""
