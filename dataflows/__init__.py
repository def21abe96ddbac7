"""Pipeline specs (`*.yaml`), their model, and the builder that turns a spec into a dataflow."""
