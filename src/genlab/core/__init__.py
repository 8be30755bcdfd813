"""The low layer every other layer uses: atomic writes, checkpoint I/O and shared training noise.

Nothing here imports another genlab package except :mod:`genlab.errors`.
"""
