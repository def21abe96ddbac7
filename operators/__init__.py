"""The filters: small, named steps that import nothing from Bytewax or Kafka.

Each is a plain class tested on its own; `dataflows.builder` is the thin layer that wires them
into a Bytewax dataflow.
"""
