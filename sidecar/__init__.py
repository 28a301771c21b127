"""MindRouter GPU sidecar agent (deployed on its own; imports nothing else from this repository)."""
