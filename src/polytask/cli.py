"""The ``polytask`` command: subcommands are plain functions with typed arguments."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler

from polytask.errors import PolytaskError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Multi-task learning with one shared Transformer encoder.")
out = Console()
err = Console(stderr=True)

ConfigArg = Annotated[Path, typer.Argument(help="run config (YAML)")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. train.lr=3e-5")]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=err, show_path=False)], force=True)
    for noisy in ("transformers", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight-loading bars would drown the training log


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    _setup_logging(verbose)


@app.command()
def train(config: ConfigArg, set_: SetOpt = None,
          resume: Annotated[bool, typer.Option(help="continue from the newest complete checkpoint")] = False,
          ) -> None:
    """Train every task in CONFIG; the best model is saved to <output_dir>/model."""
    from polytask.api import train as run

    run(config, set_ or [], resume=resume)


@app.command()
def demo(output_dir: Annotated[Path, typer.Option(help="where the demo run is written")] = Path("runs/demo"),
         set_: SetOpt = None) -> None:
    """Train the embedded demo (packaged MiniLM encoder, intent + slots + domain) in a few minutes."""
    from polytask.api import demo_config_path, train as run

    results = run(demo_config_path(), [f"train.output_dir={output_dir.resolve()}", *(set_ or [])])
    test = results.get("test", {})
    out.print(f"[bold green]demo done[/]: model in {output_dir / 'model'}; test intent accuracy "
              f"{test.get('intent/accuracy', 0):.3f}, slot F1 {test.get('slots/f1', 0):.3f}, "
              f"domain accuracy {test.get('domain/accuracy', 0):.3f}")


@app.command("validate-data")
def validate_data(config: ConfigArg, set_: SetOpt = None) -> None:
    """Check every data file of CONFIG and list all problems at once (exit 2 if any)."""
    from polytask.api import validate_data as check

    counts = check(config, set_ or [])
    for dataset, splits in counts.items():
        out.print(f"{dataset}: " + ", ".join(f"{split} {n}" for split, n in splits.items()))
    out.print("[green]data OK[/]")


@app.command()
def evaluate(model_dir: Annotated[Path, typer.Argument(help="a saved model directory")],
             config: Annotated[Optional[Path], typer.Option(help="run config; default: <model_dir>/../config.yaml")] = None,
             split: Annotated[list[str], typer.Option(help="split(s) to evaluate")] = ["test"],  # noqa: B006
             output: Annotated[Optional[Path], typer.Option(help="write metrics as JSON here")] = None,
             set_: SetOpt = None) -> None:
    """Evaluate a saved model on the data of a config."""
    from polytask.atomic import write_text
    from polytask.config import load_config
    from polytask.inference import evaluate_model, load_model
    from polytask.training.progress import print_table

    model = load_model(model_dir)
    run_config = load_config(config or model_dir.parent / "config.yaml", set_ or [])
    results = evaluate_model(model, run_config, tuple(split))
    print_table(list(model.tasks.values()), results, out)
    if output:
        write_text(output, json.dumps(results, indent=2, default=str))


@app.command()
def predict(model_dir: Annotated[Path, typer.Argument(help="a saved model directory")],
            input: Annotated[Path, typer.Option("--input", "-i", help='JSONL, a {"text"} or {"tokens"} per line')],
            output: Annotated[Optional[Path], typer.Option("--output", "-o", help="JSONL out (default stdout)")] = None,
            task: Annotated[Optional[list[str]], typer.Option(help="only these tasks")] = None,
            batch_size: int = 64) -> None:
    """Predict every task for each input line, in one encoder pass per batch."""
    from polytask.atomic import write_text
    from polytask.inference import load_model, predict_records, read_inputs

    records = read_inputs(input)
    model = load_model(model_dir)
    predictions = predict_records(model, records, task, batch_size)
    lines = "".join(json.dumps({"line": r.line, **{k: v for k, v in r.fields.items()},
                                "predictions": p}, ensure_ascii=False) + "\n"
                    for r, p in zip(records, predictions))
    if output:
        write_text(output, lines)
    else:
        sys.stdout.write(lines)


@app.command("list")
def list_members() -> None:
    """Every registered member of each pluggable family."""
    import polytask.sampling  # noqa: F401 - registers samplers
    import polytask.tasks  # noqa: F401 - registers task types
    import polytask.weighting  # noqa: F401 - registers balancers
    from polytask.registry import ALL

    for name, registry in sorted(ALL.items()):
        out.print(f"[bold]{name}[/]: {', '.join(registry.names())}")


def main() -> None:
    try:
        app(standalone_mode=False)
    except PolytaskError as exc:
        err.print("error:", style="bold red", end=" ")
        err.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:  # click's usage errors carry their own exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
