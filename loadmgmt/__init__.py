"""loadmgmt package."""
