"""The two references the HTTP benchmarks compare the product with (never part of the product).

    .venv/bin/python bench/reference_apps.py noop [--port 8000] [--workers N]
    .venv/bin/python bench/reference_apps.py seed [--port 8000]          # needs torch

Served as `emnist-draw serve` serves the product: uvicorn.run with one worker, and with more the
same supervisor and listening socket (emnist_draw/server/workers.py, which keeps TCP_NODELAY:
plain `uvicorn --workers N` would add ~40 ms to every keep-alive request, floor included).

* `noop_app`: the HTTP floor. FastAPI under the same uvicorn as the product, answering a fixed
  small JSON without parsing the body: what any endpoint of this stack costs before it does work.
  The body is still received (the client sends it either way), so the floor grows with its size.
* `seed_app`: the original demo's way of serving: the `seed` preset (CNN(47, 'seed'), ~99M
  parameters; random weights, which do not change its speed) run per request through torch in a
  FastAPI process; input the demo's JSON string of 784 comma-separated integers, scaled
  x / 255 * 2 - 1, one torch forward per request. Torch keeps its default thread count (that of
  the CPUs the process may use), as the demo did.

Both answer POST /api/predict and POST /predict, so one load script drives all three servers.
"""

from __future__ import annotations

import argparse
import json

from fastapi import Body, FastAPI, Request
from fastapi.responses import Response

ANSWER = b'{"prediction":"7","top_k":[{"label":"7","probability":1.0}],"model":"noop"}'


def noop_app() -> FastAPI:
    app = FastAPI(title="noop")

    async def predict(request: Request) -> Response:
        await request.body()
        return Response(ANSWER, media_type="application/json")

    for path in ("/api/predict", "/predict"):
        app.post(path)(predict)
    app.get("/healthz")(lambda: {"status": "ok"})
    return app


def seed_app() -> FastAPI:
    import torch

    from emnist_draw.data import BALANCED_CLASSES
    from emnist_draw.model import CNN

    torch.manual_seed(0)
    model = CNN(47, "seed").eval()
    app = FastAPI(title="seed (original demo)")

    def predict(data: str = Body()) -> dict:
        pixels = json.loads(data)  # the demo's body: a JSON string holding "[0,0,...]"
        x = torch.tensor(pixels, dtype=torch.float32).reshape(1, 1, 28, 28) / 255 * 2 - 1
        with torch.no_grad():
            probs = torch.softmax(model(x), 1)[0]
        top = torch.topk(probs, 5)
        guesses = [{"label": BALANCED_CLASSES[int(i)], "probability": float(p)}
                   for p, i in zip(top.values, top.indices)]
        return {"prediction": guesses[0]["label"], "top_k": guesses, "model": "seed"}

    for path in ("/api/predict", "/predict"):
        app.post(path)(predict)
    app.get("/healthz")(lambda: {"status": "ok"})
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="serve a reference app of the benchmarks")
    parser.add_argument("app", choices=["noop", "seed"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    import uvicorn

    options = {"host": args.host, "port": args.port}
    if args.workers == 1:
        uvicorn.run(f"reference_apps:{args.app}_app", factory=True, **options)
    else:
        from emnist_draw.server import workers

        workers.run(f"reference_apps:{args.app}_app", args.workers, **options)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # emnist_draw from the checkout
    main()
