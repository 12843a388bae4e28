"""Contracts between stages: pyarrow schemas for every dataset and typed (pydantic) configs."""
