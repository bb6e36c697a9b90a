"""Organizations, teams, memberships and invitations."""
