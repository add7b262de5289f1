"""The ``polytask`` command: subcommands are plain functions with typed arguments."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler

from polytask.errors import PolytaskError, environment_error

app = typer.Typer(add_completion=True, no_args_is_help=True,
                  help="Multi-task learning with one shared Transformer encoder.")
out = Console()
err = Console(stderr=True)

ConfigArg = Annotated[Path, typer.Argument(help="run config (YAML)")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. train.lr=3e-5")]
TrustOpt = Annotated[bool, typer.Option("--trust-remote-code", help="run Python code shipped in MODEL_DIR "
                                        "(auto_map); off: such a model is refused")]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=err, show_path=False)], force=True)
    for noisy in ("transformers", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # Weight-loading bars would drown the training log. transformers reads this when it is first
    # imported; importing it here would cost every command (and --help) seconds of start-up.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _print_version(value: bool) -> None:
    if value:
        from polytask import __version__

        out.print(f"polytask {__version__}")
        raise typer.Exit()


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
          version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                help="print the version and exit")] = False) -> None:
    _setup_logging(verbose)


@app.command()
def train(config: ConfigArg, set_: SetOpt = None,
          resume: Annotated[bool, typer.Option(help="continue from the newest complete checkpoint")] = False,
          init_from: Annotated[Optional[Path], typer.Option(
              help="continue training this saved model; promoted only if no dev score drops")] = None,
          overwrite: Annotated[bool, typer.Option(
              help="output_dir holds a run: remove that run's files first (only what polytask wrote)")] = False,
          ) -> None:
    """Train every task in CONFIG; the best model is saved to <output_dir>/model."""
    from polytask.api import train as run

    results = run(config, set_ or [], resume=resume, init_from=init_from, overwrite=overwrite)
    if decision := results.get("promotion"):
        verdict = "[green]promoted[/]" if decision["promoted"] else "[yellow]not promoted[/] (init model kept)"
        out.print(f"new model {verdict}; details in promotion.json")


@app.command()
def tune(config: ConfigArg, trials: Annotated[Optional[int], typer.Option(help="total trials (default: tune.trials)")] = None,
         set_: SetOpt = None) -> None:
    """Search hyperparameters (Optuna TPE + median pruning); rerun to continue the study."""
    from polytask.tuning import tune as run_search

    result = run_search(config, trials, set_ or [])
    out.print(f"best score {result['best_value']:.4f} with {result['best_params']}; "
              f"config written to {result['best_config']} ({result['trials']} trials in the study)")


@app.command()
def federated(config: ConfigArg, set_: SetOpt = None) -> None:
    """Federated MTL (Flower): clients train locally, FedAvg merges the shared encoder.

    Each client trains its own tasks on its own data; task heads stay with their client."""
    from rich.table import Table

    from polytask.federation import run_federated

    results = run_federated(config, set_ or [])
    table = Table("client", "task", "metric", "untrained", "final", "beats")
    for name, client in results["clients"].items():
        for task, row in client["tasks"].items():
            table.add_row(name, task, row["metric"], f"{row['baseline']:.4f}", f"{row['final']:.4f}",
                          "yes" if row["beats_baseline"] else "[red]no[/]")
    out.print(table)
    out.print(f"{results['rounds']} rounds; client models in {Path(results['clients'][next(iter(results['clients']))]['model']).parent.parent}")


@app.command()
def demo(output_dir: Annotated[Path, typer.Option(help="where the demo run is written")] = Path("runs/demo"),
         set_: SetOpt = None,
         overwrite: Annotated[bool, typer.Option(help="replace an earlier demo run in --output-dir")] = False,
         ) -> None:
    """Train the embedded demo (packaged MiniLM encoder, intent + slots + domain) in a few minutes."""
    from polytask.api import demo_config_path, train as run

    results = run(demo_config_path(), [f"train.output_dir={output_dir.resolve()}", *(set_ or [])],
                  overwrite=overwrite)
    test = results.get("test", {})
    out.print(f"[bold green]demo done[/]: model in {output_dir / 'model'}; test intent accuracy "
              f"{test.get('intent/accuracy', 0):.3f}, slot F1 {test.get('slots/f1', 0):.3f}, "
              f"domain accuracy {test.get('domain/accuracy', 0):.3f}")


@app.command("validate-data")
def validate_data(config: ConfigArg, set_: SetOpt = None) -> None:
    """Check every data file of CONFIG and list all problems at once (exit 2 if any)."""
    from polytask.api import validate_data as check

    for dataset, splits in check(config, set_ or []).items():
        out.print(f"{dataset}:")
        for split, seen in splits.items():
            usable = "; ".join(f"{task} {n} usable" + (f", {seen['rows'] - n} skipped (no label)"
                                                        if n < seen["rows"] else "")
                               for task, n in seen["usable"].items())
            out.print(f"  {split}: {seen['rows']} rows read; {usable}")
    out.print("[green]data OK[/]")


@app.command()
def evaluate(model_dir: Annotated[Path, typer.Argument(help="a saved model directory")],
             config: Annotated[Optional[Path], typer.Option(help="run config; default: <model_dir>/../config.yaml")] = None,
             split: Annotated[list[str], typer.Option(help="split(s) to evaluate")] = ["test"],  # noqa: B006
             output: Annotated[Optional[Path], typer.Option(help="write metrics as JSON here")] = None,
             set_: SetOpt = None, trust_remote_code: TrustOpt = False) -> None:
    """Evaluate a saved model on the data of a config."""
    from polytask.atomic import write_text
    from polytask.config import load_config
    from polytask.inference import check_output_file, check_splits, evaluate_model, load_model
    from polytask.training.progress import print_table

    check_splits(tuple(split))
    check_output_file(output, "--output", "metrics.json")
    model = load_model(model_dir, trust_remote_code=trust_remote_code)
    run_config = load_config(config or model_dir.parent / "config.yaml", set_ or [])
    results = evaluate_model(model, run_config, tuple(split))
    print_table(list(model.tasks.values()), results, out)
    if output:
        write_text(output, json.dumps(results, indent=2, default=str))


@app.command()
def predict(model_dir: Annotated[Path, typer.Argument(help="a saved model directory")],
            input: Annotated[Path, typer.Option("--input", "-i", help='JSONL, a {"text"} or {"tokens"} per line (tabular models: an object of feature columns)')],
            output: Annotated[Optional[Path], typer.Option("--output", "-o", help="JSONL out (default stdout)")] = None,
            task: Annotated[Optional[list[str]], typer.Option(help="only these tasks")] = None,
            batch_size: Annotated[int, typer.Option(min=1, help="inputs per forward pass")] = 64,
            num_beams: Annotated[Optional[int], typer.Option(
                min=1, help="seq2seq tasks: beam width (default: each task's num_beams)")] = None,
            max_new_tokens: Annotated[Optional[int], typer.Option(
                min=1, help="seq2seq tasks: most tokens generated (default: max_target_length)")] = None,
            trust_remote_code: TrustOpt = False,
            device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1, mps")] = "auto") -> None:
    """Predict every task for each input line, in one encoder pass per batch."""
    from polytask.atomic import write_text
    from polytask.inference import check_output_file, load_model, predict_records, read_inputs

    check_output_file(output, "--output", "predictions.jsonl")
    model = load_model(model_dir, device=device, trust_remote_code=trust_remote_code)
    records = read_inputs(input, model.tokenizer)  # a tabular model reads rows of feature columns
    predictions = predict_records(model, records, task, batch_size, num_beams, max_new_tokens)
    lines = "".join(json.dumps({"line": r.line, **{k: v for k, v in r.fields.items()},
                                "predictions": p}, ensure_ascii=False) + "\n"
                    for r, p in zip(records, predictions))
    if output:
        write_text(output, lines)
    else:
        sys.stdout.write(lines)


@app.command()
def monitor(rules: Annotated[Path, typer.Option("--rules", "-r", help="alert rules (YAML)")],
            input: Annotated[Path, typer.Option("--input", "-i", help="JSONL stream: text lines with --model, "
                                                "else lines carrying predictions (polytask predict output)")],
            output: Annotated[Optional[Path], typer.Option("--output", "-o", help="alerts JSONL (default stdout)")] = None,
            model: Annotated[Optional[Path], typer.Option("--model", "-m", help="a saved model directory")] = None,
            batch_size: Annotated[int, typer.Option(min=1, help="inputs per forward pass (with --model)")] = 64) -> None:
    """Evaluate alert rules (conditions on predictions, counted in tumbling windows) over a stream."""
    from polytask.monitoring import run_monitor

    alerts = run_monitor(rules, input, output, model, batch_size)
    if output is None:
        sys.stdout.write("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in alerts))
    else:
        err.print(f"{len(alerts)} alert(s) written to {output}")


def _finite(value: float) -> float:
    """Click's FloatRange lets NaN through (every comparison with NaN is false)."""
    if value != value or value in (float("inf"), float("-inf")):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def _count(text: str, low: int = 1, high: int | None = None) -> Any:
    """An integer option checked by click: out of [low, high] is exit 2 naming the option."""
    return typer.Option(min=low, max=high, help=text)


@app.command()
def serve(model_dir: Annotated[Path, typer.Argument(help="a saved model directory (with --onnx: an export)")],
          host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
          port: Annotated[int, _count("TCP port", 1, 65535)] = 8000,
          onnx: Annotated[bool, typer.Option("--onnx", help="MODEL_DIR is from `polytask export --onnx`")] = False,
          max_batch: Annotated[int, _count("inputs per micro-batch")] = 32,
          max_wait_ms: Annotated[float, typer.Option(
              min=0, max=60_000, callback=_finite, help="how long a micro-batch waits to fill")] = 5,
          max_queue: Annotated[int, _count("waiting requests before 503")] = 256,
          max_inputs: Annotated[int, _count("inputs per request before 413")] = 64,
          max_chars: Annotated[int, _count("characters per input before 413")] = 2000) -> None:
    """Serve every task of MODEL_DIR over HTTP: POST /predict, GET /health, /metadata, /docs."""
    from polytask.extras import require

    require("serve", "uvicorn", "fastapi", feature="polytask serve")
    from polytask.serving import create_app
    from polytask.serving.server import listen, run

    with listen(host, port) as sock:  # before the model loads: a busy port fails at once
        run(create_app(model_dir, onnx=onnx, max_batch=max_batch, max_wait_ms=max_wait_ms,
                       max_queue=max_queue, max_inputs=max_inputs, max_chars=max_chars), sock, host, port)


@app.command()
def export(model_dir: Annotated[Path, typer.Argument(help="a saved model directory")],
           onnx: Annotated[Optional[Path], typer.Option("--onnx", help="output directory for the ONNX export")] = None,
           hf: Annotated[Optional[Path], typer.Option(
               "--hf", help="output directory for transformers models: encoder/ and one folder per task")] = None,
           overwrite: Annotated[bool, typer.Option(
               help="replace the output even if it is not an earlier export (never the source model)")] = False,
           ) -> None:
    """Export MODEL_DIR: --onnx to one ONNX graph (every task head), --hf to transformers models."""
    from polytask.api import export as export_model
    from polytask.models.hf_export import export_hf

    if hf is None or onnx is not None:
        export_model(model_dir, onnx, overwrite=overwrite, hf=hf)
        out.print(f"[green]exported[/] {model_dir} -> {onnx} (serve it with `polytask serve {onnx} --onnx`)")
        return
    done = export_hf(model_dir, hf, overwrite=overwrite)
    for task, pipeline in done["tasks"].items():
        out.print(f"[green]exported[/] {task} -> {hf / task}: "
                  f"transformers.pipeline(\"{pipeline}\", model=\"{hf / task}\")")
    out.print(f"[green]exported[/] shared encoder -> {hf / 'encoder'} (AutoModel, AutoTokenizer)")
    for note in done["notes"]:
        err.print(f"[yellow]warning:[/] {note}")


@app.command()
def info(model_dir: Annotated[Path, typer.Argument(help="a saved model directory")],
         as_json: Annotated[bool, typer.Option("--json", help="print the card as JSON")] = False,
         trust_remote_code: TrustOpt = False) -> None:
    """Model card: sharing strategy, parameter counts, and what each task uses.

    Per task: the parameters its predictions use, the trainable ones, and of those the ones
    every task trains (shared) and the ones no other task uses (own)."""
    from rich.table import Table

    from polytask.api import info as model_card

    card = model_card(model_dir, trust_remote_code=trust_remote_code)
    if as_json:
        sys.stdout.write(json.dumps(card, indent=2) + "\n")
        return
    encoder, sharing, params = card["encoder"], card["sharing"], card["parameters"]
    out.print(f"[bold]{model_dir}[/]: {encoder['type']} encoder, {encoder['layers']} layers, "
              f"hidden {encoder['hidden_size']}")
    out.print(f"sharing: [bold]{sharing['name']}[/] {json.dumps(sharing['options']) if sharing['options'] else ''}")
    out.print(f"parameters: {params['total']:,} total, {params['trainable']:,} trainable")
    table = Table("task", "type", "uses", "trainable", "shared", "own")
    for name, row in card["tasks"].items():
        table.add_row(name, row["type"], *(f"{row[k]:,}" for k in ("total", "trainable", "shared", "own")))
    out.print(table)


OutOpt = Annotated[Optional[Path], typer.Option("--out", help="output directory")]


@app.command("relatedness")
def relatedness_cmd(config: ConfigArg, set_: SetOpt = None, out_dir: OutOpt = None,
                    steps: Annotated[int, typer.Option(help="training steps for the model-based signals (0: none)")] = 25,
                    pairwise_steps: Annotated[int, typer.Option(
                        help="measure the transfer matrix: every task alone and every pair together "
                             "for N steps (0: not measured); resumable")] = 0,
                    seeds: Annotated[int, typer.Option(help="seeds per transfer run (--pairwise-steps)")] = 3,
                    ) -> None:
    """How related the tasks of CONFIG are: matrices, heatmaps, a grouping, per-pair advice (default --out <output_dir>/relatedness)."""
    from polytask.api import _config, relatedness

    run_config = _config(config, set_ or [])
    target = out_dir or Path(run_config.train.output_dir) / "relatedness"
    result = relatedness(run_config, steps=steps, out=target, pairwise_steps=pairwise_steps, seeds=seeds)
    groups = f"suggested groups: {result['groups']}" if result["groups"] else "no grouping without --steps"
    out.print(f"[green]relatedness written to {target}[/]; {groups} (from {result['grouping_signal']})")
    for line in result["advice"]:
        if line["verdict"] != "neutral":
            out.print(f"{line['source']} -> {line['target']}: [bold]{line['verdict']}[/] ({line['confidence']})")
    if cost := (result.get("transfer") or {}).get("cost"):
        out.print(f"transfer matrix cost: {cost['runs']} runs, {cost['seconds_per_run']:.1f}s per run, "
                  f"{cost['seconds_total']:.0f}s in total")


@app.command("bench")
def bench_cmd(config: ConfigArg, set_: SetOpt = None, out_dir: OutOpt = None,
              methods: Annotated[str, typer.Option(help="comma-separated: ew, uw, or any weighting name")] = "ew,uw,famo,pcgrad",
              seeds: Annotated[int, typer.Option(help="seeds per method and per STL baseline")] = 3) -> None:
    """STL baselines vs MTL methods over seeds; Δm table (default --out <output_dir>/bench). Resumable."""
    from polytask.api import bench

    summary = bench(config, [m.strip() for m in methods.split(",") if m.strip()], seeds, out_dir, set_ or [])
    for name, entry in summary["methods"].items():
        out.print(f"{name}: Δm {entry['delta_m_mean']:+.2f} ± {entry['delta_m_std']:.2f} %")


@app.command("report")
def report_cmd(run_dir: Annotated[Path, typer.Argument(help="a training, relatedness or bench output directory")],
               relatedness: Annotated[Optional[Path], typer.Option(help="a relatedness.json to include")] = None) -> None:
    """(Re)build RUN_DIR/report.html: curves, weights, conflicts, relatedness, Δm, Pareto."""
    from polytask.api import report

    out.print(f"[green]report[/]: {report(run_dir, relatedness)}")


@app.command("list")
def list_members() -> None:
    """Every registered member of each pluggable family."""
    from polytask.api import list_members as members

    for name, names in members().items():
        out.print(f"[bold]{name}[/]: {', '.join(names)}")


def main() -> None:
    try:
        app(standalone_mode=False)
    except PolytaskError as exc:
        err.print("error:", style="bold red", end=" ")
        err.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        sys.exit(1)
    except OSError as exc:  # a full disk or a permission: the machine's, exit 2 like bad input
        if (message := environment_error(exc)) is None:
            raise
        err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except Exception as exc:  # click's usage errors carry their own exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
