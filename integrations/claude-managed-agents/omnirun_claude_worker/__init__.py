"""OmniRun worker for Claude Managed Agents: the tools of each session of a self-hosted
environment run in that session's own OmniRun sandbox."""

__version__ = "0.1.0"
