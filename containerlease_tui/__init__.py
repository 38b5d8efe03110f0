"""ContainerLease: lease Docker containers for a fixed time on a shared dev box."""

__version__ = "0.1.0"
