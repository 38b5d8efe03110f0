"""The parts of the app, one job each; ``tui.app.ContainerLeaseApp`` composes them."""
