"""Analysis figures of the seed reports, one module per family; :mod:`genlab.analysis.run_figures`
writes a run's figures, choosing them from its family record."""
