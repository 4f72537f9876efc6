"""Does a submitted report.html load anything from another host? Decided the way a browser reads it.

A regular expression cannot decide this (entities, CSS escapes, comments, ``<base href>``, SVG, srcdoc,
backslash URLs all fool one), so the page is parsed by ``tinyhtml5`` (the WHATWG HTML parsing
algorithm, as browsers and WeasyPrint use it) and its CSS by ``tinycss2`` (CSS Syntax Level 3
tokenizer: escapes decoded, comments dropped). Every place that makes a browser fetch while the page
loads is looked at; each URL is cleaned as the URL standard does (tab and newline removed, ends
trimmed, ``\\`` read as ``/``) and resolved against ``<base href>``.

What a script fetches cannot be known statically (``window["fe" + "tch"](...)`` defeats any list of
names), so a page that runs a script is "cannot verify: scripts", with one exception: a script whose
text is exactly one the project itself ships (``templates/report.js``, inlined in every report this
tool writes). Event handler attributes (``onload=``) and ``javascript:`` URLs count as scripts too.
"""
from __future__ import annotations

import base64
import io
import re
import urllib.parse
from dataclasses import dataclass, field
from functools import lru_cache
from xml.etree.ElementTree import Element

import tinycss2
import tinyhtml5

MAX_DEPTH = 8                  # frames (srcdoc, data: documents) and @import data: inside each other
SHOWN = 200                    # characters of a URL kept in a finding
SVG, XLINK = "http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"
XML = "http://www.w3.org/XML/1998/namespace"
SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")
TAB_NEWLINE = re.compile(r"[\t\n\r]")
LOCAL_SCHEMES = {"data", "about", "blob"}           # these never reach a host
LOADING_ATTRS = {"src", "lowsrc", "dynsrc", "poster", "background", "manifest", "codebase", "data",
                 "xml:base"}
LIST_ATTRS = {"archive"}                             # several URLs, space- or comma-separated
SRCSET_ATTRS = {"srcset", "imagesrcset"}
NAVIGATION_RELS = {"alternate", "author", "bookmark", "canonical", "external", "help", "license", "me",
                   "next", "nofollow", "noopener", "noreferrer", "opener", "prev", "search", "tag"}
CSS_URL_FUNCTIONS = {"url", "src"}
CSS_IMAGE_FUNCTIONS = {"image-set", "-webkit-image-set", "image", "cross-fade", "-webkit-cross-fade"}
JS_TYPES = {"", "module", "text/javascript", "application/javascript", "application/ecmascript",
            "application/x-ecmascript", "application/x-javascript", "text/ecmascript", "text/jscript",
            "text/livescript", "text/x-ecmascript", "text/x-javascript"} | {
    f"text/javascript1.{n}" for n in range(6)}
FRAME_TYPES = ("text/html", "image/svg+xml", "application/xhtml+xml", "text/xml", "application/xml")


@dataclass
class Findings:
    requests: list[str] = field(default_factory=list)   # URLs on another host, as resolved
    scripts: list[str] = field(default_factory=list)    # what runs code that cannot be checked
    unverifiable: list[str] = field(default_factory=list)  # other reasons the answer is unknown

    @property
    def verdict(self) -> str:
        if self.requests:
            n = len(self.requests)
            return f"{n} external request{'s' if n > 1 else ''}"
        if self.scripts:
            return "cannot verify: scripts"
        if self.unverifiable:
            return f"cannot verify: {self.unverifiable[0]}"
        return "self-contained"


def check(page: bytes | str) -> Findings:
    """What the page at the top of a submission would fetch from other hosts (bytes: the encoding is
    sniffed as a browser does, from a BOM or ``<meta charset>``)."""
    findings = Findings()
    _Document(findings, None, 0).walk(page)
    findings.requests = list(dict.fromkeys(findings.requests))
    return findings


def external_requests(page: bytes | str) -> list[str]:
    return check(page).requests


@lru_cache(maxsize=1)
def trusted_scripts() -> frozenset[str]:
    """The scripts this project inlines in the pages it writes, as they appear in the page."""
    from miniplaces import resources

    return frozenset({_script_text((resources.folder("templates") / "report.js").read_text("utf-8"))})


def _script_text(text: str) -> str:
    return text.replace("\r\n", "\n").strip()


def _clean(url: str) -> str:
    """The URL standard's first steps: trim C0 controls and spaces, drop every tab and newline."""
    return TAB_NEWLINE.sub("", url.strip("".join(map(chr, range(0x21)))))


def _shown(url: str) -> str:
    return url if len(url) <= SHOWN else url[:SHOWN] + "…"


def _data_url(url: str) -> tuple[str, bytes] | None:
    """(media type, body) of a ``data:`` URL, or None when it is not one or is malformed."""
    head, comma, body = _clean(url)[5:].partition(",")
    if not comma:
        return None
    media = head.split(";")[0].strip().lower() or "text/plain"
    raw = urllib.parse.unquote_to_bytes(body)
    if head.lower().replace(" ", "").endswith(";base64"):
        try:
            raw = base64.b64decode(re.sub(rb"[\s]", b"", raw) + b"==", validate=False)
        except ValueError:
            return None
    return media, raw


class _Document:
    """One document (the page, a srcdoc or a data: frame) with its base URL."""

    def __init__(self, findings: Findings, base: str | None, depth: int):
        self.findings, self.base, self.depth = findings, base, depth

    def walk(self, page: bytes | str) -> None:
        if self.depth > MAX_DEPTH:
            self.findings.unverifiable.append(f"documents nested more than {MAX_DEPTH} deep")
            return
        root = tinyhtml5.parse(page if isinstance(page, bytes) else io.StringIO(page))
        for element in root.iter():
            href = element.get("href")
            if _name(element) == ("base", None) and href is not None:
                self._set_base(href)
                break
        for element in root.iter():
            self.element(element)

    def _set_base(self, href: str) -> None:
        """A ``<base href>`` with a host makes every relative URL a request to that host."""
        url = _clean(href)
        scheme = SCHEME.match(url)
        if scheme and scheme.group(1).lower() in ("data", "javascript"):
            return  # the URL standard ignores these as a base
        if scheme or url[:2].replace("\\", "/") == "//":
            self.base = url if self.base is None else urllib.parse.urljoin(self.base, url)

    def url(self, url: str, where: str) -> str | None:
        """Record a URL the page fetches; the kind of URL ("data", "local", "external", "script")."""
        cleaned = _clean(url)
        scheme = SCHEME.match(cleaned)
        if scheme:
            name = scheme.group(1).lower()
            if name == "javascript":
                self.findings.scripts.append(f"a javascript: URL ({where})")
                return "script"
            if name in LOCAL_SCHEMES:
                return name if name == "data" else "local"
        elif cleaned[:2].replace("\\", "/") != "//":  # a path on this page's own host
            if self.base is None or not cleaned or cleaned.startswith("#"):
                return "local"
            cleaned = urllib.parse.urljoin(self.base, cleaned.replace("\\", "/"))
        self.findings.requests.append(_shown(cleaned))
        return "external"

    def element(self, element: Element) -> None:
        local, space = _name(element)
        attrs = {_attr_name(k): v for k, v in element.attrib.items()}
        for name, value in attrs.items():
            if name.startswith("on"):
                self.findings.scripts.append(f"an {name}= attribute on <{local}>")
            elif name in ("href", "action", "formaction", "xlink:href") and \
                    _clean(value).lower().startswith("javascript:"):
                self.findings.scripts.append(f"a javascript: URL (<{local} {name}>)")
        for name in LOADING_ATTRS & attrs.keys():
            self.load(attrs[name], local, f"<{local} {name}>")
        for name in LIST_ATTRS & attrs.keys():
            for part in re.split(r"[\s,]+", attrs[name]):
                if part:
                    self.url(part, f"<{local} {name}>")
        for name in SRCSET_ATTRS & attrs.keys():
            for candidate in srcset_urls(attrs[name]):
                self.url(candidate, f"<{local} {name}>")
        if "style" in attrs:
            self.css(tinycss2.parse_component_value_list(attrs["style"]))
        if space == SVG:
            self.svg(local, attrs)
        elif local == "link" and "href" in attrs:
            rels = set(attrs.get("rel", "").lower().split())
            if rels - NAVIGATION_RELS:
                kind = self.url(attrs["href"], "<link href>")
                if kind == "data" and "stylesheet" in rels:
                    self.data_css(attrs["href"])
        elif local == "meta" and attrs.get("http-equiv", "").strip().lower() == "refresh":
            for candidate in refresh_urls(attrs.get("content", "")):
                self.url(candidate, "<meta refresh>")
        elif local == "iframe" and "srcdoc" in attrs:
            _Document(self.findings, self.base, self.depth + 1).walk(attrs["srcdoc"])
        if local == "script":
            self.script(element, attrs)
        elif local == "style":
            self.css(tinycss2.parse_component_value_list("".join(element.itertext())))

    def load(self, value: str, local: str, where: str) -> None:
        kind = self.url(value, where)
        if kind == "data" and local in ("iframe", "frame", "object", "embed"):
            decoded = _data_url(value)
            if decoded and decoded[0] in FRAME_TYPES:
                self.frame(decoded[1], decoded[0])
        elif kind in ("data", "local") and local == "script":
            self.findings.scripts.append(f"a script file ({_shown(_clean(value))})")

    def frame(self, body: bytes, media: str) -> None:
        """A data: document in a frame: its own document, with no base to resolve against."""
        if media != "text/html" and re.search(rb"<!ENTITY|<\?xml-stylesheet", body, re.I):
            self.findings.unverifiable.append("XML entities or stylesheets in a frame")
            return
        _Document(self.findings, None, self.depth + 1).walk(body)

    def svg(self, local: str, attrs: dict[str, str]) -> None:
        """SVG: href and xlink:href load (image, use, feImage, script...) except on a link; any
        presentation attribute (fill, filter, mask, ...) may hold a CSS url()."""
        for name in ("href", "xlink:href"):
            if name in attrs and local != "a":
                self.load(attrs[name], local, f"<svg {local} {name}>")
        if local in ("animate", "set") and attrs.get("attributename", "").lower() in ("href", "xlink:href"):
            for name in ("values", "from", "to", "by"):  # an animation that points an <image> elsewhere
                for value in attrs.get(name, "").split(";"):
                    if value.strip():
                        self.url(value, f"<svg {local} {name}>")
        for name, value in attrs.items():
            if name not in ("href", "xlink:href", "style") and not name.startswith("on") and "(" in value:
                self.css(tinycss2.parse_component_value_list(value))

    def script(self, element: Element, attrs: dict[str, str]) -> None:
        kind = attrs.get("type")
        if kind is None and attrs.get("language"):
            kind = "text/" + attrs["language"]
        if (kind or "").strip().lower() not in JS_TYPES:
            return  # a data block (JSON, a template): never run
        if "src" in attrs or "href" in attrs or "xlink:href" in attrs:
            return  # the URL was looked at with the other loading attributes
        text = _script_text("".join(element.itertext()))
        if text and text not in trusted_scripts():
            self.findings.scripts.append("an inline <script>")

    def css(self, tokens: list, depth: int = 0) -> None:
        """Every URL a CSS token list fetches: url(), src(), image-set() strings, @import "..."."""
        follows_import = False
        for token in tokens:
            kind = token.type
            if kind in ("whitespace", "comment"):
                continue
            if follows_import and kind == "string":
                self.css_import(token.value, depth)
            follows_import = kind == "at-keyword" and token.lower_value == "import"
            if kind == "url":
                self.url(token.value, "CSS url()")
            elif kind == "function":
                if token.lower_name in CSS_URL_FUNCTIONS | CSS_IMAGE_FUNCTIONS:
                    strings = [t for t in token.arguments if t.type == "string"]
                    if token.lower_name in CSS_URL_FUNCTIONS:
                        strings = strings[:1]
                    for string in strings:
                        self.url(string.value, "CSS url()")
                self.css(token.arguments, depth)
            elif kind in ("() block", "[] block", "{} block"):
                self.css(token.content, depth)

    def css_import(self, value: str, depth: int) -> None:
        if self.url(value, "CSS @import") == "data":
            self.data_css(value, depth)

    def data_css(self, url: str, depth: int = 0) -> None:
        decoded = _data_url(url)
        if depth >= MAX_DEPTH:
            self.findings.unverifiable.append(f"@import nested more than {MAX_DEPTH} deep")
        elif decoded:
            sheet = decoded[1].decode("utf-8", errors="replace")
            self.css(tinycss2.parse_component_value_list(sheet), depth + 1)


def _name(element: Element) -> tuple[str, str | None]:
    """(local name, namespace) of an element; tinyhtml5 writes "{namespace}local"."""
    tag = element.tag if isinstance(element.tag, str) else ""
    if tag.startswith("{"):
        space, _, local = tag[1:].partition("}")
        return local.lower(), (None if space == "http://www.w3.org/1999/xhtml" else space)
    return tag.lower(), None


def _attr_name(name: str) -> str:
    """xlink:href and xml:base as written; other attributes by their lower-case local name."""
    if not name.startswith("{"):
        return name.lower()
    space, _, local = name[1:].partition("}")
    return f"xlink:{local}" if space == XLINK else f"xml:{local}" if space == XML else local.lower()


def srcset_urls(value: str) -> list[str]:
    """The URLs of a srcset, split as the HTML standard does (a URL may hold commas, as data: does)."""
    urls, i, n = [], 0, len(value)
    while i < n:
        while i < n and (value[i].isspace() or value[i] == ","):
            i += 1
        start = i
        while i < n and not value[i].isspace():
            i += 1
        url = value[start:i]
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            in_parens = False  # descriptors run to the next comma outside parentheses
            while i < n and (in_parens or value[i] != ","):
                in_parens = value[i] == "(" or (in_parens and value[i] != ")")
                i += 1
        if url:
            urls.append(url)
    return urls


def refresh_urls(content: str) -> list[str]:
    """Every URL a ``<meta http-equiv=refresh content>`` could mean ("0; URL=x", "0;url = 'x'",
    "0, x"): the rest after the delay, and the value after "url =", quotes taken off."""
    rest = re.sub(r"^\s*[\d.]*\s*[;,]?\s*", "", content)
    candidates = [rest]
    named = re.match(r"url\s*=\s*(.*)", rest, re.I | re.S)
    if named:
        candidates.append(named.group(1))
    out = []
    for candidate in candidates:
        if candidate[:1] in ("'", '"'):
            candidate = candidate[1:].split(candidate[0])[0]
        if candidate.strip():
            out.append(candidate)
    return out
