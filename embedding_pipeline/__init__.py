"""Learning content → chunks → dense and sparse vectors → Qdrant, as Dagster assets.

Importing the package (or its Definitions) reads the settings and changes nothing: no environment
variable is set and no model, database or store is opened until a run or a command needs it.
"""
