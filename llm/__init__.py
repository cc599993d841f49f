"""LocalChat's library: GGUF models, prompt formats, inference and storage. No Taipy here.

In a notebook:
    from llm import open_chat
    chat = open_chat("tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf")
    for chunk in chat.ask("What is the capital of France?"):
        print(chunk, end="", flush=True)
"""

from typing import Any

from .config import Config, SamplingParams, load_config
from .engine import Engine
from .errors import LocalChatError
from .figures import Figures
from .session import ChatSession, Reply, open_chat


def make_langchain_llm(model: str, *, config: Config | None = None, **overrides: object) -> object:
    """A LangChain `LlamaCpp` for `model`, configured like the app's, for your own chains.

    Runs in this process (no worker); `overrides` are LlamaCpp settings such as temperature.
    """
    from .llama_driver import make_llamacpp
    from .model_files import read_model_file, resolve_model

    config = config or load_config()
    path = resolve_model(model, config.models_dir)
    info = read_model_file(path)
    settings: dict[str, Any] = {
        "n_ctx": min(config.n_ctx, info.context_length or config.n_ctx),
        "n_threads": config.n_threads,
        "n_batch": config.n_batch,
        **overrides,
    }
    return make_llamacpp(str(path), sampling=config.sampling, **settings)


__all__ = [
    "ChatSession",
    "Config",
    "Engine",
    "Figures",
    "LocalChatError",
    "Reply",
    "SamplingParams",
    "load_config",
    "make_langchain_llm",
    "open_chat",
]
