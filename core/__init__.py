"""The ground floor: the types every other package shares, importing none of them.

The envelope and the records it travels in (`core.envelope`), what a step can output
(`core.outputs`), the shape of a projection table (`core.schema`), typed parameters described
(`core.params`), a dashboard's panels as a domain declares them (`core.panels`), and the one
error root (`core.errors`). Keeping them here lets filters and sinks speak the same types without
importing each other.
"""
