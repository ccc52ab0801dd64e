"""The rig: tools that play the other side of a call, for tests, demos and load tests.

The simulated Live server (:mod:`gateway.rig.simulator`), the carriers' phone peers
(:mod:`gateway.rig.peers`), the simulated phone that places calls (:mod:`gateway.rig.phone`),
the load tester (:mod:`gateway.rig.loadtest`) and the demo (:mod:`gateway.rig.demo`). They
reuse the product's pure cores rather than re-implementing the protocols; the product never
imports them (``tests/test_layers.py`` fails if it does), so none of this ships into a call.
"""
