"""The model registry and experiment tracking: one domain served by two faces, Tenantry's own
REST API (`api/ml.py`) and an MLflow-compatible one (`api/mlflow.py`).

Registered with metering on import: the `models` and `experiments` quotas count this domain's
rows. A grant on one registered model (`mdl_…`) names the model's team, as grants on team-owned
resources do (`authz.resources`), and the registry authorizes each model's routes on the model
itself.
"""

from tenantry.metering.quotas import register_count_source
from tenantry.ml import repository

register_count_source("models", repository.count_models)
register_count_source("experiments", repository.count_experiments)
