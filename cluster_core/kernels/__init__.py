"""Device-agnostic per-block kernels (torch on ``cpu`` or ``cuda``).

Every kernel takes a block (numpy, cupy or torch), moves it to the requested torch
device, works in row chunks so that no ``n x k`` matrix larger than
:data:`~cluster_core.kernels._torch.CHUNK_BYTES` materialises, and returns small numpy
results that the driver reduces. The test suite runs them on the CPU; on a GPU the same
code runs with ``device="cuda"``.
"""
