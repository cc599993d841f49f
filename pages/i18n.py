"""Every label the pages show, in English and Korean (`language = "en" | "ko"` in config.toml).

Labels with `{name}` placeholders are filled with `str.format` in Python; the others go
straight into the page builder, so they must not contain braces (Taipy reads those as bindings).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

LANGUAGES = ("en", "ko")

_EN = {
    # navbar and root
    "nav_chat": "Chat",
    "nav_models": "Models",
    "theme": "Theme",
    # chat page
    "you": "You",
    "assistant": "Assistant",
    "message_hint": "Type a message, Enter sends",
    "stop": "Stop",
    "new_chat": "New chat",
    "system_prompt": "System prompt",
    "settings": "Generation settings",
    "temperature": "Temperature",
    "top_p": "Top-p",
    "top_k": "Top-k",
    "repeat_penalty": "Repeat penalty",
    "max_tokens": "Max tokens",
    "no_model": "No model is loaded. Choose one on the Models page.",
    "open_models": "Open the Models page",
    "model_line": "Model: **{model}** · chat format **{format}**",
    "figures": "{tokens} tokens · first token {ttft:.2f} s · {tps:.1f} tokens/s",
    "stopped": "stopped",
    "cut_at_max_tokens": "cut at the token limit",
    "dropped_turns": "{n} oldest exchanges left out to fit the context",
    "empty_reply": "(no text)",
    "error_reply": "Error: {error}",
    "busy": "Writing…",
    "format_gguf": "the model's own template",
    # models page
    "models_title": "Models",
    "models_folder": "Models folder: `{folder}`",
    "rescan": "Rescan",
    "no_models": "No .gguf files in this folder yet: put some there and press Rescan.",
    "col_file": "File",
    "col_name": "Name",
    "col_arch": "Architecture",
    "col_params": "Parameters",
    "col_quant": "Type",
    "col_size": "Size",
    "col_context": "Context",
    "col_format": "Format",
    "col_status": "Status",
    "status_loaded": "loaded",
    "status_ok": "ready",
    "choose_model": "Model",
    "load_title": "Load a model",
    "load": "Load",
    "loading": "Loading {model}…",
    "loaded": "Loaded {model}",
    "load_failed": "Could not load: {error}",
    "current_model": "Loaded model: **{model}** ({n_ctx} tokens of context)",
    "current_none": "No model loaded yet.",
    "format_title": "Chat format",
    "format_for": "Chat format for **{model}**",
    "format_auto": "auto ({detected})",
    "format_saved": "{model} will use the {format} format",
    "preview_title": "Exact prompt for a short sample conversation",
    "sample_question": "What is the capital of France?",
    "sample_answer": "The capital of France is Paris.",
    "sample_follow_up": "And of Italy?",
}

_KO = {
    "nav_chat": "채팅",
    "nav_models": "모델",
    "theme": "테마",
    "you": "나",
    "assistant": "어시스턴트",
    "message_hint": "메시지를 입력하고 Enter를 누르세요",
    "stop": "중지",
    "new_chat": "새 채팅",
    "system_prompt": "시스템 프롬프트",
    "settings": "생성 설정",
    "temperature": "온도",
    "top_p": "Top-p",
    "top_k": "Top-k",
    "repeat_penalty": "반복 페널티",
    "max_tokens": "최대 토큰 수",
    "no_model": "불러온 모델이 없습니다. 모델 페이지에서 선택하세요.",
    "open_models": "모델 페이지 열기",
    "model_line": "모델: **{model}** · 채팅 형식 **{format}**",
    "figures": "토큰 {tokens}개 · 첫 토큰 {ttft:.2f}초 · 초당 {tps:.1f} 토큰",
    "stopped": "중지됨",
    "cut_at_max_tokens": "토큰 한도에서 잘림",
    "dropped_turns": "컨텍스트에 맞추려고 가장 오래된 대화 {n}개를 뺐습니다",
    "empty_reply": "(내용 없음)",
    "error_reply": "오류: {error}",
    "busy": "작성 중…",
    "format_gguf": "모델 파일의 템플릿",
    "models_title": "모델",
    "models_folder": "모델 폴더: `{folder}`",
    "rescan": "다시 검색",
    "no_models": "이 폴더에 .gguf 파일이 없습니다. 파일을 넣고 다시 검색을 누르세요.",
    "col_file": "파일",
    "col_name": "이름",
    "col_arch": "구조",
    "col_params": "매개변수",
    "col_quant": "양자화",
    "col_size": "크기",
    "col_context": "컨텍스트",
    "col_format": "채팅 형식",
    "col_status": "상태",
    "status_loaded": "사용 중",
    "status_ok": "준비됨",
    "choose_model": "모델",
    "load_title": "모델 불러오기",
    "load": "불러오기",
    "loading": "{model} 불러오는 중…",
    "loaded": "{model}을(를) 불러왔습니다",
    "load_failed": "불러오지 못했습니다: {error}",
    "current_model": "사용 중인 모델: **{model}** (컨텍스트 {n_ctx} 토큰)",
    "current_none": "아직 불러온 모델이 없습니다.",
    "format_title": "채팅 형식",
    "format_for": "**{model}**의 채팅 형식",
    "format_auto": "자동 ({detected})",
    "format_saved": "{model}은(는) 이제 {format} 형식을 씁니다",
    "preview_title": "짧은 예시 대화의 실제 프롬프트",
    "sample_question": "프랑스의 수도는 어디인가요?",
    "sample_answer": "프랑스의 수도는 파리입니다.",
    "sample_follow_up": "이탈리아는요?",
}

_LABELS = {"en": _EN, "ko": _KO}


def labels(language: str) -> Mapping[str, str]:
    """The labels for `language` ("en" or "ko"), read-only."""
    return MappingProxyType(_LABELS[language])
