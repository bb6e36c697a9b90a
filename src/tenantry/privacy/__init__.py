"""A person's data across every domain: the GDPR export and erasure of an account."""
