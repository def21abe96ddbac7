"""Example domains, each a plug-in package of its own: nothing of the project imports them.

A domain brings its command schemas, its filters, its specs, its load generator and its
dashboard queries, and a spec loads it through `modules:` exactly as a user's own domain is
loaded.
"""
