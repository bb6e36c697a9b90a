"""Authorization: the permission catalog, principals, the decision engine, compiled policy
snapshots and `authorize`, the one check every service goes through."""
