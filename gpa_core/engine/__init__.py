"""Running Algorithm 3.1: :class:`~gpa_core.engine.flow.GPAFlow` (K members advanced together, on the
eager Torch path or the compiled CPU kernel of :mod:`~gpa_core.engine.kernel`) and the live
background :class:`~gpa_core.engine.runner.Runner` behind the playground.
"""
