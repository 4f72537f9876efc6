"""The report pipeline: run the sections, render HTML, PDF and the notebook, pack a submission."""
