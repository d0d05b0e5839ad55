"""The merged list."""
