"""A submitted form read as the API's request model, and the errors shown beside its fields.

A page validates a form with the same Pydantic model as the API's route, so a value the API
refuses is refused here with the same words. A domain's problem (a taken slug, a weak password)
is shown beside the field it names, or above the form when it names none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from tenantry.kit.errors import Problem
from tenantry.web.session import CSRF_FIELD

FORM = "_form"  # errors that belong to the whole form
_M = TypeVar("_M", bound=BaseModel)


@dataclass
class FormState:
    """What a form shows again after a refusal: its values and its errors by field."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    status: int = 200

    def error(self, name: str) -> str:
        return self.errors.get(name, "")

    def value(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    @property
    def failed(self) -> bool:
        return bool(self.errors)


class FormRefused(Exception):
    """A form that is shown again with its errors (the request wrote nothing)."""

    def __init__(self, state: FormState) -> None:
        super().__init__(state.errors)
        self.state = state


def query_form(request: Request) -> FormData:
    """A GET form's values (the address's query) read as a submitted form is."""
    pairs: list[tuple[str, str | UploadFile]] = list(request.query_params.multi_items())
    return FormData(pairs)


def text_fields(form: FormData) -> dict[str, str]:
    """The form's text values (files ignored), without the CSRF token."""
    return {k: v for k, v in form.items() if isinstance(v, str) and k != CSRF_FIELD}


def parse(
    model: type[_M],
    form: FormData,
    *,
    optional_blank: frozenset[str] = frozenset(),
    extra: dict[str, Any] | None = None,
) -> _M:
    """The form as `model`; FormRefused (422) with each error beside its field. Fields named
    in `optional_blank` are left out when blank, so the model's default applies."""
    values = text_fields(form)
    data: dict[str, Any] = {
        k: v
        for k, v in values.items()
        if k in model.model_fields and not (k in optional_blank and not v.strip())
    }
    data.update(extra or {})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors(include_url=False):
            where = str(error["loc"][0]) if error["loc"] else FORM
            errors.setdefault(where, error["msg"])
        raise FormRefused(FormState(values, errors, 422)) from None


def refused(
    problem: Problem, form: FormData | dict[str, str], fields: dict[str, str] | None = None
) -> FormRefused:
    """The problem's `detail` beside the field it names: `fields` maps a problem's `code` to a
    field; otherwise a field whose name is in the code (`invalid_slug` -> `slug`); otherwise
    the whole form."""
    values = text_fields(form) if isinstance(form, FormData) else dict(form)
    name = (fields or {}).get(problem.code)
    if name is None:
        name = next((k for k in values if k and k in problem.code), FORM)
    return FormRefused(FormState(values, {name: problem.detail}, problem.status))
