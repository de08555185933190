"""Citations: plain text, BibTeX and CITATION.cff for every run, and for the archive.

Each citation names the archive, the run id, its title, authors and date, the
permanent URL (from ``archive.base_url``) and the run's content digest, the
sha256 of its file manifest, so a reader can check that the bytes they
downloaded are the bytes that were cited.

Without a base URL there is no permanent URL to give: the citations say so
and give the run's path inside the site instead.

An imported run is someone else's result: its citation names the original
authors (``source.authors`` in metadata.json, from ``sitegen import
--author``) and the tool that wrote it, says "authors not recorded" when
nobody is named, and names the archive's publisher as the one who
republished it, never as its author.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from importlib import resources
from typing import Any

import fastjsonschema
import jsonschema
import yaml

from sitegen import imported
from sitegen.exceptions import BuildError

CFF_SCHEMA = "vendor/citation-cff-1.2.0.schema.json"
NO_BASE_URL = "the archive sets no archive.base_url"
DIGEST_NOTE = "sha256 of the run's file manifest, listed on the run page"
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def absolute(base_url: str, rel: str) -> str | None:
    """``base_url + rel``, or None when the archive has no base URL."""
    return base_url + rel if base_url else None


@dataclass(frozen=True)
class Citation:
    """The three forms of one run's citation, as text."""

    text: str
    bibtex: str
    cff: str
    url: str | None  # absolute permalink, or None without a base URL


@cache
def _cff_schema() -> dict[str, Any]:
    text = resources.files("sitegen").joinpath("schemas", CFF_SCHEMA).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)  # the vendored schema is a JSON object
    return schema


@cache
def _cff_validator() -> jsonschema.protocols.Validator:
    return jsonschema.Draft7Validator(_cff_schema(), format_checker=jsonschema.FormatChecker())


def _formats(schema: Any) -> set[str]:
    """The names of every ``format`` a schema uses."""
    if isinstance(schema, list):
        return set().union(*map(_formats, schema))
    if not isinstance(schema, dict):
        return set()
    own = {schema["format"]} if isinstance(schema.get("format"), str) else set()
    return own.union(*map(_formats, schema.values()))


@cache
def _cff_passes() -> Callable[[Any], Any]:
    """The schema compiled to Python (fastjsonschema): about a tenth of jsonschema's
    0.55 ms a document, which was 5 s of a build that cites 10,000 runs. Each
    format is judged by jsonschema's own checker, so both accept the same documents."""
    checker = jsonschema.FormatChecker()
    formats = {name: partial(checker.conforms, format=name) for name in _formats(_cff_schema())}
    return fastjsonschema.compile(_cff_schema(), formats=formats)


# Compiling the schema takes about 0.2 s, what jsonschema spends on a thousand
# documents: a build that cites a few new runs checks them with jsonschema alone.
COMPILE_AFTER = 1000
_checked = [0]  # documents checked by this process


def expect(documents: int) -> None:
    """Told that this process (or the workers it is about to fork) will check about
    ``documents`` documents: past ``COMPILE_AFTER``, compile the check now, once, so
    that each forked worker inherits it instead of checking its first thousand
    with jsonschema and compiling its own."""
    if documents > COMPILE_AFTER:
        _cff_passes()
        _checked[0] = max(_checked[0], COMPILE_AFTER)


def cff_errors(document: dict[str, Any]) -> list[str]:
    """Every way ``document`` breaks the CFF 1.2.0 schema (empty when valid).

    Past the first ``COMPILE_AFTER`` documents, the compiled check says whether
    it passes; only a document that fails it is checked again by jsonschema,
    for every error in its words.
    """
    _checked[0] += 1
    if _checked[0] <= COMPILE_AFTER:
        if _cff_validator().is_valid(document):
            return []
    else:
        try:
            _cff_passes()(document)
            return []
        except fastjsonschema.JsonSchemaException:
            pass
    errors = sorted(_cff_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]


def known_license(license_id: str | None) -> str | None:
    """The license if CFF knows it as an SPDX id, else None (left out of the CFF)."""
    if not license_id:
        return None
    enum = _cff_schema()["definitions"]["license-enum"]["enum"]
    return license_id if license_id in enum else None


def cff_yaml(document: dict[str, Any]) -> str:
    """The document as YAML, after checking it against the schema (a failure is a bug)."""
    errors = cff_errors(document)
    if errors:
        raise BuildError("generated CITATION.cff is invalid: " + "; ".join(errors))
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=1000)


UNKNOWN_AUTHORS = "Authors not recorded"


def _authors(entry: dict[str, Any], archive: dict[str, Any]) -> list[str]:
    """Who is cited as author: the run's authors, else the archive's; for an
    imported run only its original authors (empty when not recorded)."""
    if entry.get("source"):
        return imported.original_authors(entry["source"], entry.get("authors"))
    return list(entry.get("authors") or archive.get("authors") or [archive["title"]])


def _source_file(entry: dict[str, Any]) -> str | None:
    """``<file> (sha256 <digest>)`` of an imported run's kept source file."""
    name = (entry.get("source") or {}).get("file")
    if not name:
        return None
    files = entry.get("files") or []
    sha = next((m["sha256"] for m in files if m["path"] == f"source/{name}"), None)
    return f"{name} (sha256 {sha})" if sha else name


def _provenance(entry: dict[str, Any], archive: dict[str, Any]) -> str:
    """What an imported run's citation adds: the tool, the source file, who republished it."""
    source = entry["source"]
    parts = [f"Results of {imported.tool_text(source)}"]
    kept = _source_file(entry)
    if kept:
        parts.append(f"source file {kept}")
    return "; ".join(parts) + ". " + imported.republished_text(archive) + "."


def _is_archive(names: list[str], archive: dict[str, Any]) -> bool:
    return names == [archive["title"]] and not archive.get("authors")


def _date(entry: dict[str, Any]) -> str | None:
    stamp = entry.get("started_at_utc") or entry.get("finished_at_utc")
    return stamp[:10] if stamp and re.match(r"^\d{4}-\d{2}-\d{2}", stamp) else None


# ---------------------------------------------------------------- BibTeX

_BIB_SPECIAL = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def bib_escape(text: str) -> str:
    return "".join(_BIB_SPECIAL.get(ch, ch) for ch in " ".join(text.split()))


def bib_author(name: str, whole: bool = False) -> str:
    """A person's name as is; an organisation, or a name BibTeX would split wrongly,
    kept whole in braces."""
    escaped = bib_escape(name)
    if whole or " and " in f" {name.lower()} " or "," in name or len(name.split()) > 3:
        return "{" + escaped + "}"
    return escaped


def bib_key(run_id: str) -> str:
    return "run-" + re.sub(r"[^A-Za-z0-9_:.-]", "-", run_id)


def bibtex(entry: dict[str, Any], archive: dict[str, Any], url: str | None) -> str:
    date = _date(entry)
    names = _authors(entry, archive)
    whole = _is_archive(names, archive)
    author = (
        " and ".join(bib_author(a, whole) for a in names)
        if names
        else bib_author(UNKNOWN_AUTHORS, whole=True)
    )
    published = f"{archive['title']}, benchmark run {entry['id']}"
    if entry.get("source"):
        tool = imported.tool_text(entry["source"])
        again = imported.republished_text(archive, capital=False)
        published = f"Results of {tool}, {again}, benchmark run {entry['id']}"
    fields: list[tuple[str, str]] = [
        ("author", author),
        ("title", "{" + bib_escape(entry["title"]) + "}"),
        ("howpublished", bib_escape(published)),
    ]
    if entry.get("source") and imported.publisher_text(archive):
        fields.append(("publisher", bib_escape(imported.publisher_text(archive))))
    if date:
        fields.append(("year", date[:4]))
    note = f"Run id {entry['id']}. Content digest {entry['digest']} ({DIGEST_NOTE})."
    if entry.get("source"):
        note = _provenance(entry, archive) + " " + note
    if url:
        fields.append(("url", url))
    else:
        note += f" Path within the published site: {entry['url']} ({NO_BASE_URL})."
    fields.append(("note", bib_escape(note)))
    body = ",\n".join(f"  {k:<12} = {{{v}}}" for k, v in fields)
    if date:
        body += f",\n  {'month':<12} = {_MONTHS[int(date[5:7]) - 1]}"
    return f"@misc{{{bib_key(entry['id'])},\n{body}\n}}\n"


# ---------------------------------------------------------------- CFF


def _cff_authors(names: list[str]) -> list[dict[str, str]]:
    # Free-form names cannot be split into given and family names reliably,
    # so each is an entity with a name, which CFF allows for any author.
    return [{"name": n} for n in names]


def run_cff(entry: dict[str, Any], archive: dict[str, Any], url: str | None) -> dict[str, Any]:
    where = (
        f"Permanent URL: {url}"
        if url
        else f"Path within the published site: {entry['url']} ({NO_BASE_URL})."
    )
    message = "If you use this benchmark run, please cite it as below. " + where
    abstract = [f"Benchmark run {entry['id']} in {archive['title']}.", entry.get("description")]
    if entry.get("source"):
        message = "If you use these results, please cite them as below. " + where
        abstract.insert(1, _provenance(entry, archive))
    doc: dict[str, Any] = {
        "cff-version": "1.2.0",
        "message": message,
        "type": "dataset",
        "title": entry["title"],
        "version": entry["id"],
        "authors": _cff_authors(_authors(entry, archive) or [UNKNOWN_AUTHORS]),
        "abstract": " ".join(p for p in abstract if p),
    }
    date = _date(entry)
    if date:
        doc["date-released"] = date
    if url:
        doc["url"] = url
    identifiers: list[dict[str, str]] = []
    if url:
        identifiers.append({"type": "url", "value": url, "description": "Permanent URL of the run"})
    identifiers.append(
        {"type": "other", "value": entry["digest"], "description": "Content digest: " + DIGEST_NOTE}
    )
    doc["identifiers"] = identifiers
    license_id = known_license(entry.get("license") or archive.get("license"))
    if license_id:
        doc["license"] = license_id
    keywords = ["LLM inference benchmark", *entry.get("tags", [])]
    doc["keywords"] = list(dict.fromkeys(keywords))
    return doc


def archive_cff(
    archive: dict[str, Any], entries: list[dict[str, Any]], repository: str = ""
) -> dict[str, Any]:
    """The archive's own CITATION.cff, dated by its newest run."""
    url = archive.get("base_url") or None
    message = "If you use data from this archive, please cite it as below."
    if not url:
        message += f" No permanent URL is given: {NO_BASE_URL}."
    doc: dict[str, Any] = {
        "cff-version": "1.2.0",
        "message": message,
        "type": "dataset",
        "title": archive["title"],
        "authors": _cff_authors(list(archive.get("authors") or [archive["title"]])),
    }
    if archive.get("description"):
        doc["abstract"] = archive["description"]
    dates = sorted(d for d in (_date(e) for e in entries) if d)
    if dates:
        doc["date-released"] = dates[-1]
    if url:
        doc["url"] = url
    if repository:
        doc["repository"] = repository
    license_id = known_license(archive.get("license"))
    if license_id:
        doc["license"] = license_id
    doc["keywords"] = ["LLM inference benchmark", "benchmark archive"]
    return doc


# ---------------------------------------------------------------- plain text


def plain_text(entry: dict[str, Any], archive: dict[str, Any], url: str | None) -> str:
    date = _date(entry)
    authors = ", ".join(_authors(entry, archive)) or UNKNOWN_AUTHORS
    where = url if url else f"{entry['url']} (path within the published site; {NO_BASE_URL})"
    published = f"{archive['title']}."
    if entry.get("source"):
        published = _provenance(entry, archive)
    return (
        f"{authors} ({date[:4] if date else 'n.d.'}). {entry['title']} "
        f"[benchmark run {entry['id']}{', ' + date if date else ''}]. {published} "
        f"{where}. Content digest {entry['digest']}."
    )


def run_citation(entry: dict[str, Any], archive: dict[str, Any]) -> Citation:
    url = absolute(archive.get("base_url") or "", entry["url"])
    return Citation(
        text=plain_text(entry, archive, url),
        bibtex=bibtex(entry, archive, url),
        cff=cff_yaml(run_cff(entry, archive, url)),
        url=url,
    )
