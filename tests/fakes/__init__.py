"""Fake CRM servers for tests and benchmarks: in-memory records behind real HTTP, with failure injection."""
