"""Hub commands for the command line: `download`, `search`, `files` and `catalog`.

llm/cli.py wires them in (`add_hub_parsers(commands)`, then `HUB_COMMANDS` in its table).
`download` draws a tqdm bar on a terminal and resumes an interrupted download when run again;
Ctrl-C stops it keeping the partial file. `files` and `catalog` say whether each file fits this
machine at the configured context (`llm.fit`, the rule the models page and loading use).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ..catalog import Catalog, CatalogEntry, load_catalog
from ..config import Config
from ..errors import HubNotFoundError, LocalChatError
from ..fit import Fit, Machine, hub_file_fit, machine_status
from ..gguf_file import human_size
from .api import GgufModel, HubSettings, list_gguf_files, search_models
from .download import download_model, partial_downloads
from .names import check_repo_id, safe_local_name
from .progress import DownloadProgress

EXIT_INTERRUPTED = 130


def add_download_parser(commands: argparse._SubParsersAction) -> None:
    download = commands.add_parser(
        "download", help="download a GGUF model from Hugging Face into the models folder"
    )
    download.add_argument("repo", help="repository, e.g. TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF")
    download.add_argument("file", help="file in it, e.g. tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf")
    download.add_argument("--revision", help="branch, tag or commit (default: main)")


def add_search_parser(commands: argparse._SubParsersAction) -> None:
    about = "search Hugging Face for GGUF repositories (to find a stored chat: chats search)"
    search = commands.add_parser("search", help=about, description=about[0].upper() + about[1:])
    search.add_argument("query", nargs="?", default="", help="words in the repository name")
    search.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")


def add_files_parser(commands: argparse._SubParsersAction) -> None:
    files = commands.add_parser(
        "files", help="list a repository's GGUF files with sizes and whether they fit"
    )
    files.add_argument("repo", help="repository, e.g. TheBloke/Mistral-7B-Instruct-v0.2-GGUF")
    files.add_argument("--revision", help="branch, tag or commit (default: main)")


def add_catalog_parser(commands: argparse._SubParsersAction) -> None:
    commands.add_parser("catalog", help="list LocalChat's recommended models")


def add_hub_parsers(commands: argparse._SubParsersAction) -> None:
    """All Hub commands: download, search, files, catalog."""
    add_download_parser(commands)
    add_search_parser(commands)
    add_files_parser(commands)
    add_catalog_parser(commands)


def cmd_download(args: argparse.Namespace, config: Config) -> int:
    check_repo_id(args.repo)
    safe_local_name(args.file)  # refuse a bad name before any request
    settings = HubSettings.from_env()
    listing = list_gguf_files(args.repo, revision=args.revision, settings=settings)
    model = next((m for m in listing.models if args.file in [f.path for f in m.files]), None)
    if model is None:
        names = ", ".join(m.file_name for m in listing.models[:5]) or "none"
        raise HubNotFoundError(f"file {args.file} not found in {args.repo} (GGUF files: {names})")
    machine = machine_status(config.models_dir)
    fit = _fit(model, machine, config, _catalog())
    if fit.ram != "fits":
        print(f"warning: {fit.message}", file=sys.stderr)
    print(
        f"Downloading {model.name} ({human_size(model.size_bytes)}) from {args.repo} "
        f"into {config.models_dir}",
        file=sys.stderr,
    )

    said_resume = False

    def report(event: DownloadProgress) -> None:
        nonlocal said_resume
        if event.state == "downloading" and event.resumed_from and not said_resume:
            said_resume = True
            done, total = human_size(event.resumed_from), human_size(event.bytes_total)
            print(f"resuming: {done} of {total} already downloaded", file=sys.stderr)
        elif event.state == "verifying":
            print("verifying the SHA-256 checksum...", file=sys.stderr)

    try:
        path = download_model(
            args.repo,
            args.file,
            config.models_dir,
            revision=args.revision,
            settings=settings,
            on_progress=report,
            show_bar=True,
        )
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"saved {path} (checksum verified)")
    return 0


def cmd_search(args: argparse.Namespace, config: Config) -> int:
    found = search_models(args.query, limit=args.limit)
    if not found:
        print("no GGUF repositories found")
    for repo in found:
        gated = "  [gated]" if repo.gated else ""
        print(f"{repo.repo_id}  ({repo.downloads} downloads, {repo.likes} likes){gated}")
    return 0


def cmd_files(args: argparse.Namespace, config: Config) -> int:
    listing = list_gguf_files(args.repo, revision=args.revision)
    machine = machine_status(config.models_dir)
    catalog = _catalog()
    gated = "  [gated: accept its license on the Hub and set HF_TOKEN]" if listing.gated else ""
    print(f"{listing.repo_id}{gated}")
    if not listing.models:
        print("  (no .gguf files)")
    for model in listing.models:
        fit = _fit(model, machine, config, catalog)
        quant = model.quantization or "?"
        print(f"  {model.name}  {quant}  {human_size(model.size_bytes)}  {fit.message}")
    waiting = [p for p in partial_downloads(config.models_dir) if p.repo_id == listing.repo_id]
    for partial in waiting:
        print(
            f"  interrupted: {partial.file_name} {human_size(partial.bytes_done)} of "
            f"{human_size(partial.bytes_total)} (download again to resume)"
        )
    return 0


def cmd_catalog(args: argparse.Namespace, config: Config) -> int:
    catalog = load_catalog()
    machine = machine_status(config.models_dir)
    for entry in catalog.entries:
        fit = _fit(entry, machine, config, catalog)
        star = " *recommended*" if entry.recommended else ""
        print(f"{entry.name} {entry.quantization}{star}  ({entry.license})")
        print(f"    {entry.repo_id}  {entry.file_name}")
        print(f"    {human_size(entry.size_bytes)} download, {fit.message}")
    return 0


def _fit(
    file: GgufModel | CatalogEntry, machine: Machine, config: Config, catalog: Catalog | None
) -> Fit:
    """The verdict at the configured context: llm.fit's rule, as on the models page."""
    return hub_file_fit(
        file.repo_id, file.file_name, file.size_bytes, machine, n_ctx=config.n_ctx, catalog=catalog
    )


def _catalog() -> Catalog | None:
    try:
        return load_catalog()
    except LocalChatError:
        return None  # estimates still work without it


HUB_COMMANDS: dict[str, Callable[[argparse.Namespace, Config], int]] = {
    "download": cmd_download,
    "search": cmd_search,
    "files": cmd_files,
    "catalog": cmd_catalog,
}
