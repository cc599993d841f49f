"""Reading documents: PDF, DOCX, Markdown, plain text and HTML, as LangChain `Document`s.

`DocumentFileLoader(path).load()` is a LangChain document loader (`BaseLoader`): one `Document`
per PDF page (`metadata["page"]`, from 1) or per section (`metadata["section"]`, the heading
it sits under), `metadata["source"]` the path. LangChain's own loaders are not used because
none bounds its work (pages, characters, unpacked size) and its DOCX loader drops tables.

Documents are hostile input: every reader stops at `MAX_PAGES` / `MAX_CHARS` (keeping what came
before, with a note) and at a deadline, and refuses files over `MAX_FILE_BYTES` or DOCX files
that unpack to more than `MAX_UNPACKED_BYTES` before parsing them. A file that cannot be read
raises `UnreadableFileError` with the reason. The indexer runs all this in a helper process
with a memory cap and a watchdog for what these checks cannot interrupt (`index_process`).
"""

from __future__ import annotations

import re
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document

from .errors import UnreadableFileError

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_UNPACKED_BYTES = 200 * 1024 * 1024
MAX_PAGES = 2_000
MAX_CHARS = 2_000_000
TIME_LIMIT_S = 60.0


@dataclass
class Budget:
    """What reading one file may still use; `spend` says when to stop."""

    deadline: float
    chars_left: int
    note: str = ""  # set when the file was cut short

    def take(self, text: str, where: str) -> str:
        """`text`, cut to what the character cap allows (noting it when it does)."""
        if time.monotonic() > self.deadline:
            raise UnreadableFileError(f"reading it took longer than {TIME_LIMIT_S:g} s")
        if len(text) > self.chars_left:
            text = text[: self.chars_left]
            self.note = f"only the text up to {where} was indexed ({MAX_CHARS:,} characters)"
        self.chars_left -= len(text)
        return text

    @property
    def full(self) -> bool:
        return self.chars_left <= 0


Reader = Callable[[Path, Budget], Iterator[Document]]
READERS: dict[str, Reader] = {}


def reader(*suffixes: str) -> Callable[[Reader], Reader]:
    """Register a reader for file name suffixes (lower case, with the dot)."""

    def register(fn: Reader) -> Reader:
        for suffix in suffixes:
            READERS[suffix] = fn
        return fn

    return register


def supported(path: Path) -> bool:
    """Whether LocalChat reads files of this kind."""
    return path.suffix.lower() in READERS


class DocumentFileLoader(BaseLoader):
    """LangChain loader for one file of any supported kind, within the limits.

    After `load()`, `note` says if the file was cut short (too many pages or characters)."""

    def __init__(self, path: str | Path, *, time_limit_s: float = TIME_LIMIT_S) -> None:
        self.path = Path(path)
        self.time_limit_s = time_limit_s
        self.note = ""

    def lazy_load(self) -> Iterator[Document]:
        path = self.path
        read = READERS.get(path.suffix.lower())
        if read is None:
            raise UnreadableFileError(f"LocalChat does not read {path.suffix or 'such'} files")
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise UnreadableFileError(f"cannot be read: {exc.strerror}") from None
        if size > MAX_FILE_BYTES:
            raise UnreadableFileError(
                f"is {size / 2**20:,.0f} MB; documents of at most "
                f"{MAX_FILE_BYTES // 2**20} MB are indexed"
            )
        budget = Budget(time.monotonic() + self.time_limit_s, MAX_CHARS)
        any_text = False
        for document in read(path, budget):
            if document.page_content.strip():
                any_text = True
                document.metadata["source"] = str(path)
                yield document
            if budget.full:
                break
        self.note = budget.note
        if not any_text:
            raise UnreadableFileError(
                "has no text to index"
                + (
                    " (a scanned PDF? LocalChat does not read text in images)"
                    if path.suffix.lower() == ".pdf"
                    else ""
                )
            )


# -- text -------------------------------------------------------------------------------------


def decode_text(data: bytes) -> str:
    """Bytes of a text file as text: UTF-8 (with or without BOM), UTF-16 with BOM, else the
    legacy Korean (CP949) and Western (CP1252) encodings; binary content is refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise UnreadableFileError("is not valid UTF-16 text") from None
    if b"\x00" in data[:65536]:
        raise UnreadableFileError("is not text (it holds binary data)")
    for encoding in ("utf-8-sig", "cp949", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UnreadableFileError("is not text in a known encoding (UTF-8, UTF-16, CP949, CP1252)")


def _read_text(path: Path) -> str:
    try:
        return decode_text(path.read_bytes())
    except OSError as exc:
        raise UnreadableFileError(f"cannot be read: {exc.strerror}") from None


@reader(".txt", ".text")
def read_plain_text(path: Path, budget: Budget) -> Iterator[Document]:
    """A plain text file: one document."""
    yield Document(page_content=budget.take(_read_text(path), "its end"))


@reader(".md", ".markdown")
def read_markdown(path: Path, budget: Budget) -> Iterator[Document]:
    """Markdown: one document per section, `section` the nearest heading above it."""
    from langchain_text_splitters import MarkdownHeaderTextSplitter

    headers = [("#", "h1"), ("##", "h2"), ("###", "h3")]
    splitter = MarkdownHeaderTextSplitter(headers_to_split_on=headers, strip_headers=False)
    for document in splitter.split_text(_read_text(path)):
        heading = next(
            (document.metadata[k] for _, k in reversed(headers) if k in document.metadata), ""
        )
        section = budget.take(document.page_content, f"section {heading!r}")
        yield Document(page_content=section, metadata={"section": heading})
        if budget.full:
            return


# Private-use characters around a heading's text: never in a page once stripped of them.
_MARK = re.compile("\ue000([^\ue000\ue001]*)\ue001")


@reader(".html", ".htm", ".xhtml")
def read_html(path: Path, budget: Budget) -> Iterator[Document]:
    """HTML: the visible text (no scripts, styles or navigation), one document per section
    under an h1-h3 heading."""
    from bs4 import BeautifulSoup

    html = re.sub("[\ue000\ue001]", "", _read_text(path))
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "nav", "head", "svg"]):
        tag.decompose()
    for heading in soup.find_all(["h1", "h2", "h3"]):
        title = " ".join(heading.get_text(" ").split())
        heading.replace_with(f"\n\ue000{title}\ue001\n")
    text = soup.get_text("\n")
    pieces = _MARK.split(text)  # text, heading, text, heading, text...
    sections = [("", pieces[0]), *zip(pieces[1::2], pieces[2::2], strict=True)]
    for heading, body in sections:
        lines = [" ".join(line.split()) for line in body.splitlines()]
        content = "\n".join(line for line in lines if line)
        if heading:
            content = f"{heading}\n{content}"
        yield Document(
            page_content=budget.take(content, f"section {heading!r}"), metadata={"section": heading}
        )
        if budget.full:
            return


# -- PDF --------------------------------------------------------------------------------------


@reader(".pdf")
def read_pdf(path: Path, budget: Budget) -> Iterator[Document]:
    """PDF (pypdf): one document per page with text, `page` its number from 1."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        pdf = PdfReader(path, strict=False)
        if pdf.is_encrypted and not _opens_without_password(pdf):
            raise UnreadableFileError("is encrypted with a password")
        pages = pdf.pages
        count = len(pages)
        for index in range(min(count, MAX_PAGES)):
            text = pages[index].extract_text() or ""
            yield Document(
                page_content=budget.take(text, f"page {index + 1}"), metadata={"page": index + 1}
            )
            if budget.full:
                return
        if count > MAX_PAGES:
            budget.note = f"only the first {MAX_PAGES:,} of its {count:,} pages were indexed"
    except UnreadableFileError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        # pypdf raises more than its own errors on a damaged file.
        raise UnreadableFileError(f"is not a readable PDF ({_short(exc)})") from None
    except NotImplementedError as exc:  # e.g. an encryption method pypdf lacks
        raise UnreadableFileError(
            f"uses a PDF feature that cannot be read ({_short(exc)})"
        ) from None


def _opens_without_password(pdf: Any) -> bool:
    # Some PDFs are encrypted with an empty user password (only printing is restricted).
    try:
        return bool(pdf.decrypt(""))
    except Exception:  # e.g. AES without the optional `cryptography` package
        return False


# -- DOCX -------------------------------------------------------------------------------------


@reader(".docx")
def read_docx(path: Path, budget: Budget) -> Iterator[Document]:
    """DOCX (python-docx): paragraphs and tables in order (a table row as cells joined by
    " | "), one document per section under a heading."""
    _check_zip(path)
    import docx
    from docx.table import Table

    try:
        document = docx.Document(str(path))
        heading, lines = "", []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                for row in block.rows:
                    cells = [" ".join(cell.text.split()) for cell in row.cells]
                    lines.append(
                        " | ".join(dict.fromkeys(c for c in cells if c))
                    )  # merged cells repeat
                continue
            text = block.text.strip()
            style = (block.style.name if block.style is not None else "") or ""
            if text and style.startswith(("Heading", "Title")):
                if any(lines):
                    yield _section(heading, lines, budget)
                    if budget.full:
                        return
                heading, lines = text, [text]
            elif text:
                lines.append(text)
        if any(lines):
            yield _section(heading, lines, budget)
    except UnreadableFileError:
        raise
    except Exception as exc:  # python-docx and lxml raise many kinds on a damaged file
        raise UnreadableFileError(f"is not a readable DOCX file ({_short(exc)})") from None


def _section(heading: str, lines: list[str], budget: Budget) -> Document:
    text = budget.take("\n".join(line for line in lines if line), f"section {heading!r}")
    return Document(page_content=text, metadata={"section": heading})


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        raise UnreadableFileError("is not a readable DOCX file (not a zip archive)") from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise UnreadableFileError(
            f"unpacks to {unpacked / 2**20:,.0f} MB; at most {MAX_UNPACKED_BYTES // 2**20} MB "
            "are read"
        )


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
