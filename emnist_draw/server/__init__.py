"""The web app and JSON API (`emnist-draw serve`): FastAPI on ONNX Runtime, never torch."""
