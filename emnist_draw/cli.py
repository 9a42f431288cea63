"""`emnist-draw serve|train|evaluate|calibrate|export|predict|read|data|db|feedback`: one command
line for the whole project.

predict, read and evaluate print a table for people; with --json, one JSON object per file (or
per evaluation) for programs. predict answers as POST /api/predict/upload does (the same
decoding, limits and status: an image of a word is "several_characters"); read as
/api/read/upload. A file that cannot be read is one line naming it, and exit status 1 after the
others; a model that cannot be loaded is one line and exit status 2.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from dataclasses import fields
from pathlib import Path

from emnist_draw.data import DEFAULT_DATA_DIR, PARTS, SPLITS, EmnistFileError


def cmd_train(args: argparse.Namespace) -> None:
    from emnist_draw.train import TrainConfig, train  # torch: only with the train extra

    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    result = train(cfg)
    if result:
        print(json.dumps({"balanced_accuracy": result["val"]["balanced_accuracy"],
                          "accuracy": result["val"]["accuracy"], "out": cfg.out}))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from emnist_draw.evaluate import evaluate_command

    report = evaluate_command(args)
    if args.json:
        print(json.dumps(report))
        return
    overlap = report["excluded_train_overlap"]
    print(table([
        ["model", report["model"]], ["data", report["data"]], ["charset", report["charset"]],
        ["images", f"{report['images']:,}" + (f" ({overlap:,} seen in training left out)"
                                              if isinstance(overlap, int) else f" ({overlap})")],
        ["balanced accuracy", percent(report["balanced_accuracy"], 2)],
        ["accuracy", percent(report["accuracy"], 2)],
        ["calibration error", f"{percent(report['ece'], 1)} (mean confidence "
                              f"{percent(report['mean_confidence'], 1)}, temperature "
                              f"{report['temperature']:g})"]]))
    recall = sorted(report["per_class_recall"].items(), key=lambda kv: kv[1])
    print("\nrecall per class, lowest first:")
    print(table([[c, percent(r, 1)] for c, r in recall], columns=6))
    if report["most_confused"]:
        print("\nmost confused (true -> read as):")
        print(table([[f"{m['true']} -> {m['predicted']}", f"{m['count']:,}"]
                     for m in report["most_confused"]], columns=2))


def cmd_calibrate(args: argparse.Namespace) -> None:
    from emnist_draw.calibration import calibrate

    print(json.dumps(calibrate(args.model, args.data_dir)))


def cmd_export(args: argparse.Namespace) -> None:
    from emnist_draw.export import export

    print(json.dumps(export(args.checkpoint, args.out, args.arch, data_dir=args.data_dir,
                            command=args.command, int8=args.int8)))


def table(rows: list[list[str]], header: list[str] | None = None, columns: int = 1) -> str:
    """Rows as aligned text; `columns` > 1 sets that many rows side by side (short lists)."""
    if columns > 1:
        rows = [sum(rows[i:i + columns], []) for i in range(0, len(rows), columns)]
    lines = ([header] if header else []) + rows
    if not lines:
        return "(none)"
    widths = [max(len(line[i]) for line in lines if i < len(line))
              for i in range(max(map(len, lines)))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                     for line in lines)


def percent(p: float, digits: int = 1) -> str:
    return f"{100 * p:.{digits}f}%" if p >= 10 ** -(digits + 2) else f"<{10 ** -digits:g}%"


def others(top_k: list[tuple[str, float]]) -> str:
    """The runners-up as people read them: "1 1.2%, 7 0.3%"."""
    return ", ".join(f"{label} {percent(p)}" for label, p in top_k[1:])


def open_file(path: str):  # -> PIL.Image.Image, headers read and checked as the API checks them
    """An image file for predict and read, with the API's limits; an error names the file in one
    plain sentence (never a Python object)."""
    from PIL import Image, UnidentifiedImageError

    from emnist_draw.server.inputs import InputError, open_image

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InputError(f"cannot be read ({e.strerror or e})") from e
    try:
        Image.open(io.BytesIO(data)).close()
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError("not an image: give a PNG, JPEG or WebP file") from e
    return open_image(data)  # the API's checks: format, size, pixels


def cmd_predict(args: argparse.Namespace) -> None:
    from emnist_draw.preprocess import InkError, normalize
    from emnist_draw.server.inputs import InputError, decode_ink
    from emnist_draw.server.predictor import Predictor

    predictor = Predictor(args.model)  # what /api/predict answers with, status logic included
    failed, rows = False, []
    for path in args.images:
        try:
            ink = decode_ink(open_file(path))
            answer = predictor.predict(normalize(ink)[None], [(args.top_k, args.charset, False)],
                                       [predictor.image_ink(ink)])[0]
        except (InkError, InputError) as e:
            print(f"emnist-draw: {path}: {e}", file=sys.stderr)
            failed = True
            continue
        top = [(g.display, g.probability) for g in answer.top_k]
        if args.json:
            print(json.dumps({"file": path, **answer.model_dump(exclude_none=True), "top_k": [
                {"label": g.label, "display": g.display, "probability": round(g.probability, 4)}
                for g in answer.top_k]}), flush=True)
        else:
            status = answer.status + (f" ({' or '.join(answer.ambiguous_with)})"
                                      if answer.ambiguous_with else "")
            if answer.status == "several_characters":
                status += ": `emnist-draw read` reads it"
            rows.append([path, top[0][0], percent(top[0][1]), status, others(top)])
    if rows:
        print(table(rows, ["file", "read", "sure", "status", "then"]))
    if failed:
        sys.exit(1)


def word_list(value: str | None) -> list[str] | None:
    """--words: a file of words (one a line, or separated by commas), or a comma list."""
    from emnist_draw.server.schemas import MAX_WORD_LENGTH, MAX_WORDS

    if value is None:
        return None
    path = Path(value)
    text = path.read_text(errors="replace") if path.is_file() else value
    words = [w.strip() for w in text.replace(",", "\n").splitlines() if w.strip()]
    where = f"{value} " if path.is_file() else ""
    if not words:
        raise ValueError(f"--words {where}holds no words: give a file or a comma list")
    if len(words) > MAX_WORDS:
        raise ValueError(f"--words {where}holds {len(words):,} words; at most {MAX_WORDS:,}, as "
                         "the API takes")
    long = next((w for w in words if len(w) > MAX_WORD_LENGTH), None)
    if long:
        raise ValueError(f"--words: {long[:20]!r}... is over {MAX_WORD_LENGTH} characters")
    return words


def cmd_read(args: argparse.Namespace) -> None:
    from emnist_draw.preprocess import InkError
    from emnist_draw.reader import StringReader
    from emnist_draw.recognizer import Recognizer
    from emnist_draw.server.inputs import InputError, load_image

    words = word_list(args.words)  # a bad list fails before the model loads
    reader = StringReader(Recognizer(args.model))
    failed = False
    for path in args.images:
        try:
            reading = reader.read_image(load_image(open_file(path)), charset=args.charset,
                                        top_k=args.top_k, pattern=args.pattern, words=words)
        except (InputError, ValueError) as e:  # InkError, a pattern no reading fits
            print(f"emnist-draw: {path}: {e}", file=sys.stderr)
            failed = True
            continue
        if args.json:
            print(json.dumps({"file": path, "text": reading.text,
                              "characters": [{"prediction": c.prediction, "display": c.display,
                                              "box": c.box, "status": c.status, "top_k": [
                                                  {"label": l, "display": d,
                                                   "probability": round(p, 4)}
                                                  for l, d, p in c.top_k]}
                                             for c in reading.characters],
                              "alternatives": [{"text": t, "score": s}
                                               for t, s in reading.alternatives]}), flush=True)
            continue
        alternatives = ", ".join(t for t, _ in reading.alternatives[1:])
        print(f"{path}: {reading.text}" + (f"  (or: {alternatives})" if alternatives else ""))
        print(table([[str(n), c.display, percent(c.top_k[0][2]), c.status,
                      others([(d, p) for _, d, p in c.top_k])]
                     for n, c in enumerate(reading.characters, 1)],
                    ["#", "read", "sure", "status", "then"]))
    if failed:
        sys.exit(1)


def cmd_data(args: argparse.Namespace) -> None:
    from emnist_draw import download

    if args.action == "unipen":
        from emnist_draw.unipen import export_idx

        for path in export_idx(args.out, quality=args.quality):
            print(path)
        return
    if args.action == "download":
        for path in download.fetch_split(args.split, args.data_dir, url=args.url,
                                         archive=args.archive):
            print(path)
    else:
        from emnist_draw.data import build_pool

        pool = build_pool(args.data_dir)
        print(json.dumps({"images": int(len(pool.labels)), "val": int(pool.is_val.sum()),
                          "train": int((~pool.is_val).sum())}))


def cmd_db(args: argparse.Namespace) -> None:
    from emnist_draw import store

    try:
        url = store.database_url(args.data_dir)
        store.upgrade(url, args.revision)
    except store.StoreError as e:
        print(f"emnist-draw: {e}", file=sys.stderr)
        sys.exit(2)
    if args.action == "revision":  # a new script, from what store.corrections now says
        from alembic import command

        if not args.message:
            raise ValueError("db revision needs -m MESSAGE: what the new revision changes")
        engine = store.make_engine(url)
        try:
            command.revision(store.alembic_config(engine), args.message, autogenerate=True)
        finally:
            engine.dispose()
        return
    print(json.dumps({"database": store.describe(url), "revision": args.revision}))


def cmd_feedback(args: argparse.Namespace) -> None:
    from emnist_draw import store

    try:
        url = store.database_url(args.data_dir)
        store.upgrade(url)  # an older store is brought up to date first; a new one is just empty
    except store.StoreError as e:
        print(f"emnist-draw: {e}", file=sys.stderr)
        sys.exit(2)
    engine = store.make_engine(url)
    try:
        print(json.dumps(store.export_idx(engine, args.out)))
    finally:
        engine.dispose()


def _exit_unless_bindable(host: str, port: int) -> None:
    """One clear line and exit 2 when (host, port) cannot be bound, e.g. the port is taken.

    Checked before anything is imported or loaded, so a busy port costs a moment, not a model
    load followed by uvicorn's `[Errno 98]`. The socket is bound as uvicorn binds it
    (SO_REUSEADDR, so a port in TIME_WAIT counts as free) and closed at once.
    """
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                why = "is already in use: stop what serves there, or pick another with --port"
            else:
                why = f"cannot be used: {e.strerror or e}"
            print(f"emnist-draw: {host}:{port} {why}", file=sys.stderr)
            sys.exit(2)


def cmd_serve(args: argparse.Namespace) -> None:
    _exit_unless_bindable(args.host, args.port)  # first: before any import or model load
    import os

    import uvicorn

    from emnist_draw import store
    from emnist_draw.recognizer import ModelFileError, Recognizer
    from emnist_draw.server.app import MODEL_ENV, create_app
    from emnist_draw.server.convert import ConversionError, cached_model
    from emnist_draw.server.security import DEFAULT_REQUEST_TIMEOUT_S, SecurityOptions
    from emnist_draw.server.workers import uvicorn_options

    timeout = DEFAULT_REQUEST_TIMEOUT_S if args.request_timeout is None else args.request_timeout
    protection = SecurityOptions(args.cors_origin, args.rate_limit, timeout)
    protection.check()  # a bad origin or limit fails here, before the model loads
    serve = {"host": args.host, "port": args.port, "log_level": args.log_level,
             **uvicorn_options(args.forwarded_allow_ips)}  # timeouts, trusted proxies
    try:
        store.quota_bytes(args.feedback_quota_mb)  # a bad quota fails here, before the model loads
        if args.feedback_quota_mb is not None:  # how create_app reads it, here or in a worker
            os.environ[store.QUOTA_ENV] = str(args.feedback_quota_mb)
        # The export runs in a child process: this one goes on to serve and must stay torch-free.
        model = cached_model(args.checkpoint, args.arch) if args.checkpoint else args.model
        if args.workers == 1:
            app = create_app(model, args.data_dir, **vars(protection))  # the model loads here, once
            uvicorn.run(app, **serve)
            return
        path = Recognizer(model).path  # a bad model fails here, once, not in every worker
        store.upgrade(store.database_url(args.data_dir))  # and so does an unusable database
    except (ConversionError, ModelFileError, store.StoreError) as e:
        print(f"emnist-draw: {e}", file=sys.stderr)
        sys.exit(2)
    os.environ[MODEL_ENV] = str(path.resolve())  # how the worker processes learn the model
    os.environ[store.DATA_ENV] = str(store.data_dir(args.data_dir).resolve())  # and the store
    os.environ.update(protection.environ())  # and CORS, the rate limit and the timeout
    # uvicorn.run(..., workers=N), but on a socket that keeps TCP_NODELAY (see server/workers.py).
    from emnist_draw.server import workers

    workers.run("emnist_draw.server.app:create_app", args.workers, **serve)


def top_k(value: str) -> int:
    """--top-k: 1 to 47, as the API takes."""
    if not value.isdigit() or not 1 <= int(value) <= 47:
        raise argparse.ArgumentTypeError(f"{value!r}: give a whole number from 1 to 47")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emnist-draw", description=__doc__)
    sub = parser.add_subparsers(dest="command_name", required=True)
    data_dir_help = "folder with the official EMNIST files (.gz or raw)"
    store_help = ("where the corrections' SQLite database lives (default: $EMNIST_DRAW_DATA or "
                  "./data); ignored when $DATABASE_URL names a PostgreSQL database")

    t = sub.add_parser("train", help="train a model on the pool (torchrun for several processes)")
    t.add_argument("--out", default="runs/small", help="run folder: checkpoints, metrics.json")
    t.add_argument("--preset", default="small",
                   help="model widths: small (default), medium (the shipped model's), or seed")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--batch-size", type=int, default=256, help="total over all processes")
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--weight-decay", type=float, default=5e-4)
    t.add_argument("--label-smoothing", type=float, default=0.1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help=data_dir_help)
    t.add_argument("--extra", action="append", default=[], metavar="IMAGES_IDX",
                   help="more training images (idx file, labels file beside it); repeatable")
    t.add_argument("--init", default="", metavar="CHECKPOINT",
                   help="start from these weights (fine-tuning): new optimizer and schedule")
    t.add_argument("--limit", type=int, default=0, help="train on this many pool images only")
    t.add_argument("--val-limit", type=int, default=0, help="measure on this many validation images")
    t.add_argument("--no-augment", dest="augment", action="store_false")
    t.add_argument("--precision", choices=["fp32", "bf16", "auto"], default="fp32",
                   help="bf16: about 2x faster where the CPU has AVX512-BF16/AMX (or on a GPU), "
                        "emulated and slower elsewhere; auto: bf16 only where it is native")
    t.add_argument("--threads", type=int, default=0, help="torch threads per process")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="balanced accuracy and more of a model on a data set")
    e.add_argument("--model", default=None, help="an .onnx file (default: the shipped model)")
    e.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help=data_dir_help)
    e.add_argument("--split", choices=SPLITS, default=None,
                   help="an official split (with --part), or the label numbering of --labels")
    e.add_argument("--part", choices=PARTS, default="test")
    e.add_argument("--images", default=None, help="an idx images file (with --labels)")
    e.add_argument("--labels", default=None, help="an idx labels file (with --images)")
    e.add_argument("--confusion", default=None, metavar="PNG", help="write the confusion matrix")
    e.add_argument("--charset", choices=["all", "digits", "letters"], default="all",
                   help="read as the page does with this character set (digits for a digits set)")
    e.add_argument("--json", action="store_true", help="the figures as one JSON object")
    e.set_defaults(func=cmd_evaluate)

    c = sub.add_parser("calibrate", help="fit a model's temperature on the pool's validation "
                                         "part, into its metadata (export does it too)")
    c.add_argument("model", help="a shipped model's name or an .onnx file")
    c.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help=data_dir_help)
    c.set_defaults(func=cmd_calibrate)

    x = sub.add_parser("export", help="checkpoint -> ONNX model + metadata, with a parity check")
    x.add_argument("checkpoint", help="a .pt from `emnist-draw train` or the original demo")
    x.add_argument("--out", required=True, help="the .onnx file to write (metadata: .json beside)")
    x.add_argument("--arch", default=None, help="preset, when the checkpoint does not say (seed)")
    x.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help=data_dir_help)
    x.add_argument("--command", default=None, help="the training command, for the metadata")
    x.add_argument("--int8", action="store_true",
                   help="quantize to int8 (calibrated on the pool): faster, a little less accurate")
    x.set_defaults(func=cmd_export)

    p = sub.add_parser("predict", help="read characters from image files (PNG, JPEG, WebP)")
    p.add_argument("images", nargs="+", help="image files, any size, either polarity")
    p.add_argument("--model", default=None, help="an .onnx file (default: the shipped model)")
    p.add_argument("--top-k", type=top_k, default=5, help="how many classes to show (1-47)")
    p.add_argument("--charset", choices=["all", "digits", "letters"], default="all")
    p.add_argument("--json", action="store_true", help="one JSON object per file, as the API's")
    p.set_defaults(func=cmd_predict)

    r = sub.add_parser("read", help="read strings (a number, a word, a code) from images of one line")
    r.add_argument("images", nargs="+", help="image files of one line of characters each")
    r.add_argument("--model", default=None, help="an .onnx file (default: the shipped model)")
    r.add_argument("--charset", choices=["all", "digits", "letters"], default="all")
    r.add_argument("--pattern", default=None, help="D digit, L letter, ? either; e.g. LLDDD")
    r.add_argument("--words", default=None, metavar="FILE_OR_LIST",
                   help="words the string is likely to be (as the API's words): a file, one a "
                        "line, or a comma list, e.g. --words cat,dog")
    r.add_argument("--top-k", type=top_k, default=3, help="classes shown per character (1-47)")
    r.add_argument("--json", action="store_true", help="one JSON object per file, with alternatives")
    r.set_defaults(func=cmd_read)

    d = sub.add_parser("data", help="download the official EMNIST files, or describe the pool")
    d.add_argument("action", choices=["download", "pool", "unipen"],
                   help="unipen: render the UNIPEN tune writers as idx files for `train --extra`")
    d.add_argument("--out", default="runs/unipen", help="unipen: where to write the idx files")
    d.add_argument("--quality", choices=["OK", "all"], default="OK",
                   help="unipen: only the hand-checked samples, or all")
    d.add_argument("--split", choices=SPLITS, default="balanced")
    d.add_argument("--data-dir", default=None, help="where to keep the files (default: a cache)")
    d.add_argument("--url", default=None, help="where to download the NIST archive from")
    d.add_argument("--archive", default=None, help="a gzip.zip you already have")
    d.set_defaults(func=cmd_data)

    s = sub.add_parser("serve", help="the web app and API (OpenAPI at /docs)")
    s.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve other machines")
    s.add_argument("--port", type=int, default=8000)
    which = s.add_mutually_exclusive_group()
    which.add_argument("--model", default=None,
                       help="a shipped model's name or an .onnx file (default: the shipped model)")
    which.add_argument("--checkpoint", default=None,
                       help="serve a torch checkpoint (e.g. the original demo's model.ckpt): "
                            "converted once to ONNX, cached; needs the train extra")
    s.add_argument("--arch", default=None, help="the checkpoint's preset, when it does not say (seed)")
    s.add_argument("--workers", type=int, default=1, help="server processes, one model each")
    s.add_argument("--data-dir", default=None, help=store_help)
    s.add_argument("--feedback-quota-mb", type=float, default=None, metavar="MB",
                   help="at most this much for the stored corrections; past it a correction "
                        "is answered 507 (default: $EMNIST_DRAW_FEEDBACK_QUOTA_MB, else 1024; "
                        "0: no quota)")
    s.add_argument("--cors-origin", action="append", default=[], metavar="URL",
                   help="let pages from this origin (https://host[:port]) call the API from a "
                        "browser; repeatable (default: no CORS, same origin only)")
    s.add_argument("--rate-limit", type=int, default=0, metavar="N",
                   help="at most N API requests a minute per client IP, per worker (default: off)")
    s.add_argument("--forwarded-allow-ips", default=None, metavar="IPS",
                   help="trust X-Forwarded-For/-Proto from these proxy addresses (comma-separated, "
                        "or *); the rate limit then counts the client they name (default: none)")
    s.add_argument("--request-timeout", type=float, default=None, metavar="S",
                   help="answer 503 to a request that takes longer than S seconds, reading its "
                        "body included (default: 30; 0: no limit)")
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info",
                                                           "debug"])
    s.set_defaults(func=cmd_serve)

    b = sub.add_parser("db", help="the corrections database: apply its migrations by hand")
    b.add_argument("action", choices=["upgrade", "revision"],
                   help="upgrade: to --revision; revision: write a new migration script (in a "
                        "checkout) from the difference between the database and store.py")
    b.add_argument("--revision", default="head", help="upgrade: the schema revision to reach")
    b.add_argument("-m", "--message", default="", help="revision: what it changes")
    b.add_argument("--data-dir", default=None, help=store_help)
    b.set_defaults(func=cmd_db)

    f = sub.add_parser("feedback", help="the stored corrections, as idx files for train --extra")
    f.add_argument("action", choices=["export"])
    f.add_argument("--out", required=True, help="folder for emnist-feedback-{images,labels}-*.gz")
    f.add_argument("--data-dir", default=None, help=store_help)
    f.set_defaults(func=cmd_feedback)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (EmnistFileError, ValueError) as e:
        print(f"emnist-draw: {e}", file=sys.stderr)
        sys.exit(2)
    except RuntimeError as e:
        # Imported here: the recognizer brings ONNX Runtime, which `--help` and `train` need not.
        from emnist_draw.recognizer import ModelFileError

        if not isinstance(e, ModelFileError):
            raise
        print(f"emnist-draw: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
