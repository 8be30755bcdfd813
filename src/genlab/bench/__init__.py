"""``genlab bench``: how fast genlab trains, samples and extracts FID features on this machine.

Every number is measured beside a plain fp32 eager PyTorch baseline of the same networks in the
same process (blocks alternating, so machine noise hits both alike), with the CPU's name and
features printed beside it. BENCHMARKS.md reports the results with the command that made them.
"""
