"""dpap-neuro, hardware side: SparseNet artifacts, Lava simulation, Loihi fixed point, netx/NIR export,
operation counts and energy. Never imports dpap_neuro; Lava is imported lazily.
"""
