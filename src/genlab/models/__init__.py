"""Model families, one module each; :mod:`genlab.registry` maps ``model.family`` to their records."""
