"""Ranking k sampled responses per prompt (by people, the verifier or an LLM judge) and turning
rankings into preference pairs: the store (``db``), automatic rankers (``auto``), the annotation
web page (``server``) and the export (``export``)."""
