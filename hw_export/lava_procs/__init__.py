"""Lava processes of our own: recorders that hand results back in one piece.

Lava 0.10's ``Var.get()`` ships arrays to the host one element per message
(a FIXME in ``PyLoihiProcessModel._get_var``), which makes reading back the
spikes of a batched run take longer than simulating it. These recorders keep
what they see in memory and write it to a ``.npy`` file at their last step.
Process (ports, Vars) and ProcessModel (implementation) are split as in Lava.
"""
