"""`monitor ingest MODEL FILE...`: load prediction files into the log."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from monitor.cli import AppContext

BATCH = 5000
log = logging.getLogger(__name__)


@click.command()
@click.argument("model")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "jsonl", "csv", "parquet", "tfrecord"]),
    help="File format (auto: from the file name).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar [default: when stderr is a terminal].",
)
@click.pass_obj
def ingest(
    app: AppContext, model: str, files: tuple[str, ...], fmt: str, progress: bool | None
) -> None:
    """Load JSONL, CSV, Parquet or TFRecord (TF Serving PredictionLog) files for MODEL.

    Valid rows go to the prediction log, bad rows to quarantine with a reason, and the
    load goes on. A rerun stores nothing twice: request ids already logged and bad
    rows already quarantined count as duplicates. A file that cannot be read at all is
    reported and skipped (exit code 1 after the summary).
    """
    from sqlalchemy.exc import SQLAlchemyError
    from tqdm import tqdm

    from monitor.config import mask_url
    from monitor.errors import DatabaseError, IntakeError
    from monitor.intake.files import iter_file
    from monitor.intake.ingest import ingest_predictions
    from monitor.intake.records import IngestResult
    from monitor.intake.timebounds import TimePolicy

    settings = app.settings()
    config = settings.model(model)
    engine = app.engine()
    times = TimePolicy.from_settings(settings)
    total = IngestResult(0, 0, {})
    failed: list[str] = []
    for name in files:
        path = Path(name)
        source = f"file:{path.resolve()}"
        with tqdm(
            desc=path.name,
            unit=" rows",
            disable=None if progress is None else not progress,
            leave=False,
        ) as bar:
            try:
                for batch in _batches(iter_file(path, config, fmt), BATCH):
                    result = ingest_predictions(
                        engine, [config], batch, source=source, default_model=config.name,
                        quarantine_once=True, times=times,
                    )
                    total = total + result
                    bar.update(len(batch))
            except IntakeError as err:
                failed.append(f"{err}")
            except SQLAlchemyError as err:
                raise DatabaseError(
                    f"the database failed while loading {path} "
                    f"({type(err).__name__}: {mask_url(str(err).splitlines()[0])}); the batches "
                    "before are stored: run the same command again to resume"
                ) from err
            except Exception as err:  # noqa: BLE001 - a reader's bug must not hide the other files
                log.debug("reading %s failed", path, exc_info=True)
                failed.append(f"{path}: cannot be read ({type(err).__name__}: {err})")
    click.echo(f"{model}: {total.accepted} accepted, {total.quarantined} quarantined")
    for reason, count in sorted(Counter(total.reasons).items(), key=lambda kv: -kv[1]):
        click.echo(f"  {reason}: {count}")
    for problem in failed:
        click.echo(f"error: {problem}", err=True)
    if failed:
        raise click.exceptions.Exit(1)


def _batches(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of up to `size` rows; when reading fails, the rows read so far come first,
    then the error."""
    batch: list[Any] = []
    error: Exception | None = None
    try:
        for row in rows:
            batch.append(row)
            if len(batch) >= size:
                yield batch
                batch = []
    except Exception as err:  # noqa: BLE001 - re-raised below, after the partial batch
        error = err
    if batch:
        yield batch
    if error is not None:
        raise error
