"""Conversations saved as they happen: `ChatLog` ties a `ChatSession` to a stored chat.

`ChatLog.ask` commits the user message (and the start of the reply) before generation
starts, saves the reply's partial text at least every `save_every_s` seconds while it
streams, and records how it ended — complete, stopped or failed — with its figures. A crash
leaves the reply "streaming"; the next `ChatStore` opened marks it "interrupted".

`ChatLog.resume` is the one way to continue a stored chat: its engine (`Engines.for_chat`),
system prompt, format, settings and history come back, so the web pages, the command line and
the API continue a chat alike.

A stored chat is a tree (llm.storage): `edit` sends a changed question as a new branch,
`regenerate` writes another reply to the same question, `continue_reply` picks up a reply that
was stopped or cut at the token limit in the same message, `switch_to` and `delete_branch`
change the branch shown. A `ChatLog` remembers the branch it shows (`leaf_id`), so two tabs on
one chat each write on their own; the session's history always follows that branch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .chat_values import FIGURE_FIELDS
from .config import Config
from .errors import LocalChatError, MessageError, MessageNotFoundError, PromptError
from .figures import Figures
from .prompts import Message
from .session import ChatSession, Reply
from .storage import LEAF, ChatStore, ParentChoice, StoredChat, StoredMessage

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


def _with_raw_replies(history: list[Message], live: Sequence[Message]) -> list[Message]:
    """`history` with each reply as the model wrote it where the live session has it (a
    leading space that the stored text lost), so llama.cpp's cache matches the prompt."""
    merged = list(history)
    for i, (new, old) in enumerate(zip(history, live, strict=False)):
        if new["role"] != old["role"]:
            break
        if new["role"] == "assistant" and old["content"].lstrip() == new["content"]:
            merged[i] = dict(old)
        elif new["content"] != old["content"]:
            break
    return merged


def _path(tree: dict[int, StoredMessage], leaf: int | None) -> list[StoredMessage]:
    """The messages from the chat's first one down to `leaf` (none for None)."""
    path: list[StoredMessage] = []
    while leaf is not None and leaf in tree and len(path) <= len(tree):
        path.append(tree[leaf])
        leaf = tree[leaf].parent_id
    return path[::-1]


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
        message_id: int | None,
        *,
        save_every_s: float,
        continued: StoredMessage | None = None,
        on_forget: Any = None,
    ) -> None:
        self.reply = reply
        self.user_message_id = user_message_id  # None: a regenerated or continued reply
        self.message_id = message_id
        self.continued = continued  # the reply as it was, when this continues it
        self._on_forget = on_forget  # called when the exchange is removed (refused)
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
        unchanged = self.continued is not None and self.reply.raw_text == self.reply.start
        if unchanged and self.status != "complete":
            self._restore()  # stopped or failed before a word: the reply stays as it was
            return  # (one that ends at once is complete now: recorded below)
        if self.refused:  # as if it had never been sent
            self.chat_deleted = self._store.forget_exchange(self.user_message_id, self.message_id)
            if self._on_forget:
                self._on_forget()
            return
        figures = None
        if self.reply.figures != Figures():  # a "done" event arrived
            figures = self._stored_figures()
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

    def _stored_figures(self) -> dict[str, Any]:
        figures = dataclasses.asdict(self.figures)
        return {key: figures[key] for key in FIGURE_FIELDS}

    def _restore(self) -> None:
        old = self.continued
        assert old is not None
        with contextlib.suppress(LocalChatError):  # the error, if any, is the reply's own
            self._store.finish_reply(
                old.id,
                status=old.status,
                text=old.content,
                figures={key: getattr(old, key) for key in FIGURE_FIELDS},
                error=old.error,
                finish_reason=old.finish_reason,
            )

    def _finish_reason(self) -> str:
        reason = self.reply.finish_reason
        return reason if reason in ("stop", "length", "cancelled") else ""

    @property
    def text(self) -> str:
        """The reply's text so far."""
        return self.reply.text

    @property
    def figures(self) -> Figures:
        """What the reply cost (zeros until it ends). A continued reply: the tokens of both
        parts; the prompt, time to first token and speed of the continuation."""
        figures = self.reply.figures
        if self.continued is None or figures == Figures():
            return figures
        before = self.continued.completion_tokens or 0
        return dataclasses.replace(figures, completion_tokens=figures.completion_tokens + before)

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
        # The end of the branch this log shows and writes below; LEAF: the chat's own.
        self.leaf_id: ParentChoice = LEAF

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
        log = cls(store, chat_id, session, **options)
        log.leaf_id = None
        return log

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
        log.leaf_id = chat.current_leaf_id
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
        # Bad input: nothing stored.
        reply = self.session.ask(text, cancel=cancel, context=context, **overrides)
        self._record_settings()
        return self._exchange(reply, text, self.leaf_id)

    def _record_settings(self) -> None:
        session = self.session
        self.store.update_chat(
            self.chat_id,
            system_prompt=session.system_prompt,
            settings=session.params,
            chat_format=session.chat_format,
        )

    def _reply_columns(self) -> dict[str, str]:
        engine = self.session.engine
        fmt = self.session.format.name if engine.loaded else ""
        return {"model": engine.model_name, "format": fmt, "backend": engine.backend_name}

    def _exchange(self, reply: Reply, text: str, parent_id: ParentChoice) -> SavedReply:
        before = self.leaf_id
        user_id, reply_id = self.store.begin_exchange(
            self.chat_id, text, parent_id=parent_id, **self._reply_columns()
        )
        self.leaf_id = reply_id

        def forgotten() -> None:  # refused: the branch shown is the one before
            self.leaf_id = before

        return SavedReply(
            reply,
            self.store,
            user_id,
            reply_id,
            save_every_s=self.save_every_s,
            on_forget=forgotten,
        )

    def _tree(self) -> dict[int, StoredMessage]:
        return {m.id: m for m in self.store.tree(self.chat_id)}

    def _follow(self, path: Sequence[StoredMessage], *, tail: Sequence[Message] = ()) -> None:
        history = [*history_from_messages(path), *tail]
        self.session.set_history(_with_raw_replies(history, self.session.history))

    @staticmethod
    def _message(tree: dict[int, StoredMessage], message_id: int, role: str) -> StoredMessage:
        message = None if isinstance(message_id, bool) else tree.get(message_id)
        if message is None:
            raise MessageNotFoundError(f"no message with id {message_id} in this chat")
        if message.role != role:
            what = "a question (a message you wrote)" if role == "user" else "a reply"
            raise MessageError(f"message {message_id} is not {what}")
        return message

    def edit(
        self,
        message_id: int,
        text: str,
        *,
        cancel: threading.Event | None = None,
        context: str = "",
        **overrides: Any,
    ) -> SavedReply:
        """Send `text` in place of question `message_id`: a new branch from the same point
        (the original and its replies are kept), with a new reply streamed below it. Like
        `ask` otherwise. MessageError (a ValueError) if the message is not a question of
        this chat."""
        tree = self._tree()
        question = self._message(tree, message_id, "user")
        old_history = self.session.history
        self._follow(_path(tree, question.parent_id))
        try:
            reply = self.session.ask(text, cancel=cancel, context=context, **overrides)
        except BaseException:
            self.session.history = old_history  # bad input: nothing changed
            raise
        self._record_settings()
        return self._exchange(reply, text, question.parent_id)

    def regenerate(
        self,
        reply_id: int,
        *,
        cancel: threading.Event | None = None,
        context: str = "",
        **overrides: Any,
    ) -> SavedReply:
        """Write a new reply to the question that reply `reply_id` answers, as its sibling
        (the old one is kept). Iterate the result as for `ask` (`context`: as for `ask`,
        e.g. the passages found for the question again). MessageError (a ValueError) if
        `reply_id` is not a reply of this chat."""
        tree = self._tree()
        old = self._message(tree, reply_id, "assistant")
        if old.parent_id is None or tree[old.parent_id].role != "user":
            raise MessageError(f"reply {reply_id} answers no question")
        question = tree[old.parent_id]
        old_history = self.session.history
        self._follow(_path(tree, question.parent_id))
        try:
            reply = self.session.ask(question.content, cancel=cancel, context=context, **overrides)
        except BaseException:
            self.session.history = old_history
            raise
        self._record_settings()
        columns = self._reply_columns()
        before = self.leaf_id
        new_id = self.store.start_reply(self.chat_id, parent_id=question.id, **columns)
        self.leaf_id = new_id

        def forgotten() -> None:
            self.leaf_id = before
            if isinstance(before, int):
                with contextlib.suppress(LocalChatError):
                    self.store.switch_to(self.chat_id, before)

        return SavedReply(
            reply,
            self.store,
            None,
            new_id,
            save_every_s=self.save_every_s,
            on_forget=forgotten,
        )

    def continue_reply(
        self, reply_id: int, *, cancel: threading.Event | None = None, **overrides: Any
    ) -> SavedReply:
        """Continue reply `reply_id` (the end of the branch shown, stopped or cut at the token
        limit: `StoredMessage.can_continue`) in the same message: the result's `text` is the
        whole reply, iterating it yields the new text, and the stored message is updated
        (its figures: the tokens of both parts, the speed of the continuation). With the
        local engine only the tokens after llama.cpp's cached prefix are evaluated.
        MessageError (a ValueError) if the reply cannot be continued; PromptError if the
        engine cannot continue replies (`ChatEngine.can_continue`)."""
        tree = self._tree()
        message = self._message(tree, reply_id, "assistant")
        leaf = self.leaf_id if self.leaf_id != LEAF else self.store.get_chat(self.chat_id)
        if isinstance(leaf, StoredChat):
            leaf = leaf.current_leaf_id
        if leaf != reply_id:
            raise MessageError("only the last reply of the branch shown can be continued")
        if not message.can_continue:
            raise MessageError(
                "only a reply that was stopped or cut at the token limit can be continued"
            )
        if message.parent_id is None or tree[message.parent_id].role != "user":
            raise MessageError(f"reply {reply_id} answers no question")
        question = tree[message.parent_id]
        tail = [
            {"role": "user", "content": question.content},
            {"role": "assistant", "content": message.content},
        ]
        old_history = self.session.history
        self._follow(_path(tree, question.parent_id), tail=tail)
        try:
            reply = self.session.continue_reply(cancel=cancel, **overrides)
            before = self.store.resume_reply(reply_id)  # another tab may have continued it
        except BaseException:
            self.session.history = old_history
            raise
        return SavedReply(
            reply, self.store, None, reply_id, save_every_s=self.save_every_s, continued=before
        )

    def switch_to(self, message_id: int) -> StoredChat:
        """Show the branch through `message_id` (below it, the branch last shown there);
        the session's history follows it. MessageNotFoundError if it is not this chat's."""
        chat = self.store.switch_to(self.chat_id, message_id)
        self._show(chat)
        return chat

    def delete_branch(self, message_id: int) -> StoredChat:
        """Delete `message_id` and every message below it (`ChatStore.delete_branch`); the
        session's history follows the branch shown afterwards."""
        chat = self.store.delete_branch(self.chat_id, message_id)
        self._show(chat)
        return chat

    def _show(self, chat: StoredChat) -> None:
        self.leaf_id = chat.current_leaf_id
        self.chat = chat
        self._follow(chat.messages)
