"""The runtime: settings, the local broker, deployments, the control API and the CLI."""
