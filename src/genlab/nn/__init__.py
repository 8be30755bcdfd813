"""Reusable network blocks shared by model families (no family logic here)."""
