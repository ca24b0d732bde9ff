"""`monitor config check`: validate the configuration and print it, secrets masked."""

from __future__ import annotations

import json

import click

from monitor.cli import AppContext


@click.group()
def config() -> None:
    """Check and print the configuration."""


@config.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the resolved settings as JSON.")
@click.option("--no-models", is_flag=True,
              help="Do not load the models to check the features against their inputs (faster).")
@click.pass_obj
def check(app: AppContext, as_json: bool, no_models: bool) -> None:
    """Validate the configuration file and print the resolved settings.

    Environment overrides are applied and secrets are masked. Exits 2 and names the
    file and key of every problem when the configuration is invalid, including
    features whose declared type does not match the model's input (a string input
    declared numeric). Files the configuration points at that do not exist yet are
    warnings, not errors.
    """
    settings = app.settings()
    if not no_models:
        _check_models(settings)
    data = settings.masked()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(f"# {settings.source_path}: OK")
        _print_tree(data)
    for warning in _missing_files(settings):
        click.echo(f"warning: {warning}", err=True)


def _print_tree(data: dict, prefix: str = "") -> None:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            _print_tree(value, name + ".")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):
                _print_tree(item, f"{name}[{i}].")
        else:
            click.echo(f"{name} = {json.dumps(value)}")


def _missing_files(settings) -> list[str]:
    where = settings.source_path
    problems = []
    for i, model in enumerate(settings.models):
        if not model.path.exists():
            problems.append(f"{where}: models[{i}].path: {model.path} does not exist (yet)")
        data = model.baseline.data
        if data is not None and not data.exists():
            problems.append(f"{where}: models[{i}].baseline.data: {data} does not exist (yet)")
    return problems


def _check_models(settings) -> None:
    """Load each model that exists and check its inputs against the configured features.

    Raises ConfigError (exit 2) listing every mismatch; warnings go to stderr.
    """
    from monitor.errors import ConfigError, ModelError
    from monitor.model import check_features, load_model

    where = settings.source_path
    problems = []
    for i, model in enumerate(settings.models):
        if not model.path.exists():
            continue
        try:
            loaded = load_model(model.path)
            for warning in check_features(loaded, model.features.numeric, model.features.categorical,
                                          where=f"models[{i}].features"):
                click.echo(f"warning: {where}: {warning}", err=True)
        except ModelError as err:
            problems.append(f"{where}: {err}")
    if problems:
        raise ConfigError(problems)
