"""Serving every task of a model over HTTP (FastAPI) and exporting it to ONNX.

Needs the ``serve`` extra (fastapi, uvicorn) and, for ONNX, the ``onnx`` extra.
"""

from polytask.serving.app import create_app, load_predictor

__all__ = ["create_app", "load_predictor"]
