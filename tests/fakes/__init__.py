"""Fakes of what cannot run here (the Kubernetes API)."""
