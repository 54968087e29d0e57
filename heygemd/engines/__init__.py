"""Lip-sync engines. They know pixels and arrays, never folders."""
