"""Billing: plans and prices, subscriptions, rating, invoices, payments and payment providers."""
