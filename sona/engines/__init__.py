"""Execution engines other than the in-process loop: Spark for scale-out training and evaluation.

Import :mod:`sona.engines.spark` explicitly: it needs pyspark (and a Java runtime), which
local runs never load.
"""
