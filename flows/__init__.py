"""Prefect flows (one per stage + end-to-end flows), the `tokenmill` CLI and prefect.yaml.

Flows only move data: the stage logic they call lives in ``pipelines/``.
"""
