"""LocalChat's benchmark: raw llama.cpp, the llm/ engine, the web app and the seed approach,
measured side by side (`python bench/run.py`)."""
