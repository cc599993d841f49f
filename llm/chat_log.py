"""Conversations saved as they happen: `ChatLog` ties a `ChatSession` to a stored chat.

`ChatLog.ask` commits the user message (and the start of the reply) before generation
starts, saves the reply's partial text at least every `save_every_s` seconds while it
streams, and records how it ended — complete, stopped or failed — with its figures. A crash
leaves the reply "streaming"; the next `ChatStore` opened marks it "interrupted".

`ChatLog.resume` is the one way to continue a stored chat: its engine (`Engines.for_chat`),
system prompt, format, settings and history come back, so the web pages, the command line and
the API continue a chat alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .config import Config
from .errors import LocalChatError, PromptError
from .figures import Figures
from .prompts import Message
from .session import ChatSession, Reply
from .storage import ChatStore, StoredChat, StoredMessage

if TYPE_CHECKING:
    from .engines import ChatEngine, Engines

SAVE_EVERY_S = 2.0


def history_from_messages(messages: Sequence[StoredMessage]) -> list[Message]:
    """The conversation a model sees from stored messages: each user message with the reply
    that followed it.

    An exchange whose reply has no text and did not complete (it failed or was stopped
    before writing anything, or there is no reply at all) is left out, as `ChatSession`
    leaves it out of its history when that happens live.
    """
    history: list[Message] = []
    for question, answer in itertools.pairwise(messages):
        if question.role != "user" or answer.role != "assistant":
            continue
        if answer.content or answer.status == "complete":
            history += [
                {"role": "user", "content": question.content},
                {"role": "assistant", "content": answer.content},
            ]
    return history


def _session_for_chat(engine: ChatEngine, chat: StoredChat, *, config: Config) -> ChatSession:
    """A `ChatSession` that continues `chat`: its system prompt, format, settings (missing
    ones from `config`) and history. Trimming to the context works as for any session."""
    return ChatSession(
        engine,
        chat_format=chat.chat_format or config.chat_format,
        system_prompt=chat.system_prompt,
        params=config.sampling.replace(**chat.settings),
        history=history_from_messages(chat.messages),
    )


class SavedReply:
    """A reply being streamed and saved. Iterate it for text chunks, like a `Reply`.

    Afterwards: `status` ("complete", "stopped" or "failed"), `error`, `message_id`, and
    the `Reply`'s `text`, `figures`, `finish_reason`, `warnings`, `format_name`. A message
    the model refused before replying (PromptError: too long for its context) is not kept:
    `refused` is then True, the exchange is removed from the store, and `chat_deleted` says
    whether its chat went too (a chat that held nothing else and was named by it).
    """

    def __init__(
        self,
        reply: Reply,
        store: ChatStore,
        user_message_id: int,
        message_id: int,
        *,
        save_every_s: float,
    ) -> None:
        self.reply = reply
        self.user_message_id = user_message_id
        self.message_id = message_id
        self.status = "streaming"
        self.error = ""
        self.refused = False
        self.chat_deleted = False
        self._store = store
        self._save_every_s = save_every_s

    def __iter__(self) -> Iterator[str]:
        chunks = iter(self.reply)
        last_save = time.monotonic()
        try:
            for chunk in chunks:
                yield chunk
                if time.monotonic() - last_save >= self._save_every_s:
                    self._save_partial()
                    last_save = time.monotonic()
            self.status = (
                "complete" if self.reply.finish_reason in ("stop", "length") else "stopped"
            )
        except (GeneratorExit, KeyboardInterrupt):
            self.status = "stopped"  # the reader stopped reading: a Stop, not a failure
            raise
        except PromptError as exc:  # refused before a word was written: bad input
            self.status, self.error = "failed", str(exc)
            self.refused = not self.reply.text
            raise
        except Exception as exc:
            self.status, self.error = "failed", str(exc)
            raise
        finally:
            chunks.close()  # ends generation if still running; settles text and figures
            self._finish()

    def _save_partial(self) -> None:
        # Best effort: a busy or failing database must not cut the reply the user is
        # reading; the final save below reports the problem.
        with contextlib.suppress(Exception):
            self._store.update_reply(self.message_id, self.reply.text)

    def _finish(self) -> None:
        if self.refused:  # as if it had never been sent
            self.chat_deleted = self._store.forget_exchange(self.user_message_id, self.message_id)
            return
        figures = None
        if self.reply.figures != Figures():  # a "done" event arrived
            figures = dataclasses.asdict(self.reply.figures)
        try:
            self._store.finish_reply(
                self.message_id,
                status=self.status,
                text=self.reply.text,
                figures=figures,
                format=self.reply.format_name or None,
                error=self.error,
                finish_reason=self._finish_reason(),
            )
        except LocalChatError as exc:  # e.g. a full disk: the reply could not be recorded
            self.status, self.error = "failed", str(exc)
            raise

    def _finish_reason(self) -> str:
        reason = self.reply.finish_reason
        return reason if reason in ("stop", "length", "cancelled") else ""

    @property
    def text(self) -> str:
        """The reply's text so far."""
        return self.reply.text

    @property
    def figures(self) -> Figures:
        """What the reply cost (zeros until it ends)."""
        return self.reply.figures

    @property
    def finish_reason(self) -> str:
        """ "stop", "length" or "cancelled" once the reply has ended."""
        return self.reply.finish_reason

    @property
    def warnings(self) -> list[str]:
        """Prompt warnings (e.g. a system prompt merged into the first turn)."""
        return self.reply.warnings

    @property
    def format_name(self) -> str:
        """The chat format the prompt was rendered with."""
        return self.reply.format_name


class ChatLog:
    """A `ChatSession` whose exchanges are written to a `ChatStore` as they happen."""

    def __init__(
        self,
        store: ChatStore,
        chat_id: int,
        session: ChatSession,
        *,
        save_every_s: float = SAVE_EVERY_S,
    ) -> None:
        self.store = store
        self.chat_id = chat_id
        self.session = session
        self.save_every_s = save_every_s
        self.chat: StoredChat | None = None  # as read by `resume`

    @classmethod
    def start(
        cls, store: ChatStore, session: ChatSession, *, title: str = "", **options: Any
    ) -> ChatLog:
        """A new stored chat with the session's system prompt, format, settings and model.
        Without a title, the first message names it."""
        chat_id = store.create_chat(
            title=title,
            system_prompt=session.system_prompt,
            settings=session.params,
            model=session.engine.model_name,
            chat_format=session.chat_format,
            backend=session.engine.backend_name,
        )
        return cls(store, chat_id, session, **options)

    @classmethod
    def resume(
        cls,
        store: ChatStore,
        chat_id: int,
        engines: Engines,
        *,
        engine: ChatEngine | None = None,
        **options: Any,
    ) -> ChatLog:
        """Continue stored chat `chat_id` where it was written (`Engines.for_chat`), or on
        `engine` when one is given (e.g. moved to another backend). ChatNotFoundError if
        there is no such chat. `chat` of the result holds the chat as it was read."""
        chat = store.get_chat(chat_id)
        engine = engine or engines.for_chat(chat)
        log = cls(store, chat_id, _session_for_chat(engine, chat, config=engines.config), **options)
        log.chat = chat
        return log

    def ask(
        self,
        text: str,
        *,
        cancel: threading.Event | None = None,
        context: str = "",
        **overrides: Any,
    ) -> SavedReply:
        """Like `ChatSession.ask`, saving as it goes. The user message (and the reply, as
        "streaming") is committed before this returns; iterate the result to generate, and
        always iterate it (a reply never iterated stays "streaming" until this process ends).
        `overrides` go to `ChatSession.ask` (sampling overrides for this reply only,
        `on_queue`); the chat records the session's system prompt, settings and format.
        `context` is shown to the model with this message only; the stored message is `text`."""
        session = self.session
        # Bad input: nothing stored.
        reply = session.ask(text, cancel=cancel, context=context, **overrides)
        self.store.update_chat(
            self.chat_id,
            system_prompt=session.system_prompt,
            settings=session.params,
            chat_format=session.chat_format,
        )
        loaded = session.engine.loaded
        fmt = session.format.name if loaded else ""
        user_id, reply_id = self.store.begin_exchange(
            self.chat_id,
            text,
            model=session.engine.model_name,
            format=fmt,
            backend=session.engine.backend_name,
        )
        return SavedReply(reply, self.store, user_id, reply_id, save_every_s=self.save_every_s)
