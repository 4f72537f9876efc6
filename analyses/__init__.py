"""The analyses: pure-ish functions of (model, inputs, params) returning plain data.

Nothing in this package renders HTML or reads the command line; see miniplaces/report/sections for the glue.
"""
