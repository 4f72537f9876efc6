"""The analyses: pure-ish functions of (model, inputs, params) returning plain data.

Nothing in this package renders HTML or reads the command line; see miniplaces/sections for the glue.
"""
