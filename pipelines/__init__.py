"""Engine-free stage logic: pure functions and small step classes over documents and batches.

Prefect flows (``flows/``) and Beam transforms (``pipelines/beam/``) call into these modules and
only move data; one stage's logic lives in exactly one module here.
"""
