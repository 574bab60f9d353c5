"""A simulated bank and the evaluation of the pipeline against it.

Not part of the product: ``simbank`` talks to the pipeline only through its
contract (the topics and the alert table), as any external producer and
analyst would.
"""
