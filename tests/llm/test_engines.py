"""`Engines`: which engine answers a chat (without contacting any server)."""

from __future__ import annotations

from pathlib import Path

from llm.config import Backend, Config
from llm.engines import Engines
from llm.remote import RemoteEngine
from llm.storage import ChatStore


def test_a_chat_continues_on_its_own_backend_and_new_chats_go_to_the_active_one(
    tmp_path: Path,
) -> None:
    config = Config().replace(backends=(Backend(name="box", base_url="http://127.0.0.1:9/v1"),))
    engines = Engines(config)
    with ChatStore.in_folder(tmp_path) as store:
        local = store.get_chat(store.create_chat(model="a.gguf"))
        remote = store.get_chat(store.create_chat(model="qwen", backend="box"))
        gone = store.get_chat(store.create_chat(model="m", backend="removed"))
    assert engines.for_chat(None) is engines.local
    assert engines.for_chat(local) is engines.local
    on_box = engines.for_chat(remote)
    assert isinstance(on_box, RemoteEngine)
    assert (on_box.backend_name, on_box.model_name) == ("box", "qwen")
    assert engines.for_chat(remote) is on_box  # one engine per (backend, model)
    assert engines.for_chat(gone) is engines.local  # its backend is no longer configured
    assert engines.format_choice(on_box) == "auto"  # the server applies its own template
    engines.close()
