"""Benchmark runners for Loci: LoCoMo and LongMemEval retrieval metrics, baselines, QA scoring.

The runners talk to Loci only through `loci_client` (design section 1), so what they measure is
what an agent calling the REST API would get.
"""
