"""What the tests share besides fixtures: scripted GGUF models, local servers that speak the
Hub's and OpenAI's APIs, Chromium and the app started for a browser, and the project's paths.
Imported as `support.*` (pyproject's pytest `pythonpath`)."""

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
