"""The training settings as `intentflow train` options, generated from their one description
(ml.training.config: help text and limits), as the retrain DAG's form is."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from ml.training.config import Tunable, check_limits, tunables


def _option(setting: Tunable) -> inspect.Parameter:
    limits: dict[str, Any] = {}
    if setting.kind in (int, float):
        if setting.minimum is not None and not setting.exclusive_minimum:
            limits["min"] = setting.minimum
        if setting.maximum is not None:
            limits["max"] = setting.maximum
    annotation = Annotated[setting.kind | None, typer.Option(help=setting.help, **limits)]
    return inspect.Parameter(
        setting.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
    )


def with_tuning(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a typer command one option per tunable training setting, after its own options; the
    command receives the given ones (those not left out) as a dict, its `tuning` argument."""
    settings = tunables()
    own = inspect.signature(command, eval_str=True)
    params = [p for p in own.parameters.values() if p.name != "tuning"]
    before = next((i for i, p in enumerate(params) if p.name == "model"), len(params))
    params[before:before] = [_option(s) for s in settings]
    # Options are keyword-only to Python but positional-or-keyword to typer: keep one kind.
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        tuning = {s.name: kwargs.pop(s.name) for s in settings}
        for setting in settings:  # limits click cannot express (an exclusive minimum)
            try:
                check_limits(setting, tuning[setting.name])
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint=_flag(setting)) from None
        return command(**kwargs, tuning={k: v for k, v in tuning.items() if v is not None})

    wrapper.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
    return wrapper


def _flag(setting: Tunable) -> str:
    return "--" + setting.name.replace("_", "-")
