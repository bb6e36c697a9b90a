"""Operators: the deployment's own staff, above every org. They list, create, suspend and
resume tenants, give plans outside billing (a contract) and custom plans; they are members of
no org by being operators (see docs/operators.md)."""
