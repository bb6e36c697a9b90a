"""The model registry and experiment tracking: one domain served by two faces, Tenantry's own
REST API (`api/ml.py`) and an MLflow-compatible one (`api/mlflow.py`).

Registered with the layers below on import: the `models` and `experiments` quotas count this
domain's rows, and a grant can name one registered model (`mdl_…`).
"""

from tenantry.authz.resources import register_resolver
from tenantry.metering.quotas import register_count_source
from tenantry.ml import repository

register_count_source("models", repository.count_models)
register_count_source("experiments", repository.count_experiments)
register_resolver("model", repository.team_of_registered_model)
