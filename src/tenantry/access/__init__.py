"""Roles, the permission catalog and the one authorization function every endpoint goes through."""
