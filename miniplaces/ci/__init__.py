"""CI tools: quality gates and the comparison with an earlier report."""
