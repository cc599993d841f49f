"""LocalChat's model for other programs: the OpenAI API, without a web framework.

`schema` checks requests (every field of a stranger's JSON), `responses` shapes answers as
OpenAI does (JSON bodies, server-sent-event chunks), `service` runs them on the app's engines
(`OpenAIService`). The web layer (web/api.py) only moves bytes between HTTP and these.
"""

from .schema import ApiError, parse_chat, parse_completion, parse_embedding
from .service import OpenAIService

__all__ = ["ApiError", "OpenAIService", "parse_chat", "parse_completion", "parse_embedding"]
