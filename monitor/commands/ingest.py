"""`monitor ingest MODEL FILE...`: load prediction files into the log."""

from __future__ import annotations

from collections import Counter
from itertools import islice
from pathlib import Path

import click

from monitor.cli import AppContext

BATCH = 5000


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

    Valid rows go to the prediction log, bad rows to quarantine with a reason;
    request ids already logged are skipped as duplicates. Prints a summary.
    """
    from tqdm import tqdm

    from monitor.intake.files import iter_file
    from monitor.intake.ingest import ingest_predictions
    from monitor.intake.records import IngestResult

    settings = app.settings()
    config = settings.model(model)
    engine = app.engine()
    total = IngestResult(0, 0, {})
    for name in files:
        path = Path(name)
        rows = iter_file(path, config, fmt)
        with tqdm(
            desc=path.name,
            unit=" rows",
            disable=None if progress is None else not progress,
            leave=False,
        ) as bar:
            while batch := list(islice(rows, BATCH)):
                result = ingest_predictions(
                    engine, [config], batch, source=f"file:{path}", default_model=config.name
                )
                total = total + result
                bar.update(len(batch))
    click.echo(f"{model}: {total.accepted} accepted, {total.quarantined} quarantined")
    for reason, count in sorted(Counter(total.reasons).items(), key=lambda kv: -kv[1]):
        click.echo(f"  {reason}: {count}")
