"""Course plumbing shared by the tests, the notebooks and the gateway's command line.

`course.impl` is the one switch between the reference implementation and the learner's labs.
"""
