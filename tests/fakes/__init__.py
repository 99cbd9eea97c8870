"""Fakes of what cannot run here: the Kubernetes API and Slack's Web API."""
