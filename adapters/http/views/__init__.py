"""Seed views: one module per resource of a seed document, each an ApiRouter."""
