"""DCAT-AP 3 descriptions of the catalog and its datasets, as an RDF graph (rdflib).

The graph follows the DCAT-AP 3.0.0 application profile: licences, landing pages, access URLs,
media types and sources are IRIs of the classes the profile's range shapes name (a
``dct:LicenseDocument``, a ``foaf:Document``, a ``dct:MediaType``, a ``dcat:Dataset``), the
catalog has a description and a publisher, every dataset a contact point, dates are typed
``xsd:date``/``xsd:dateTime``, and each slice format is a ``dcat:Distribution`` served by the
node's slice API (a ``dcat:DataService``). The column schema rides along as CSVW with matgate's
own terms (unit, PSPP role, sensitivity). ``render`` turns the graph into JSON-LD or Turtle,
and ``negotiate`` picks one of those from ``?format=`` or the ``Accept`` header.

A large catalog is served a page at a time. The page says where the next one is the way DCAT
harvesters read it: the ``dcat:Catalog`` has a ``hydra:view``, a ``hydra:PartialCollectionView``
(the page's own URL) with ``hydra:first`` and, while more datasets follow, ``hydra:next`` (the
pagination ckanext-dcat's RDF harvester and data.gouv.fr's udata follow); the HTTP answer also
carries ``Link: <...>; rel="next"`` (RFC 8288) for clients that read headers. No
``hydra:totalItems`` or ``hydra:last`` is given: a count of the whole catalog would tell a
caller how many datasets it may not see. A catalog that fits on its first page is served as
before, without a view. Each page is a complete DCAT-AP catalog of its datasets; the catalog's
``dct:modified`` (the latest date of its datasets) is given only when one page holds the whole
catalog, since one page cannot know the others' dates and a harvester that merges the pages
must not find several.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS as DCTerms
from rdflib.namespace import FOAF, RDF, XSD

from connectors.datasets import Dataset
from gateway.errors import NotAcceptable

__all__ = [
    "CatalogInfo",
    "PageView",
    "RdfFormat",
    "catalog_graph",
    "dataset_graph",
    "dataset_iri",
    "negotiate",
    "render",
]

DCAT = Namespace("http://www.w3.org/ns/dcat#")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
CSVW = Namespace("http://www.w3.org/ns/csvw#")
MG = Namespace("https://matgate.dev/ns#")
SKOS = Namespace("http://www.w3.org/2004/02/skos/core#")
DCATAP = Namespace("http://data.europa.eu/r5r/")
HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
CONTEXT = {
    "dcat": str(DCAT),
    "dct": str(DCTerms),
    "foaf": str(FOAF),
    "vcard": str(VCARD),
    "csvw": str(CSVW),
    "xsd": str(XSD),
    "mg": str(MG),
    "skos": str(SKOS),
    "dcatap": str(DCATAP),
    "hydra": str(HYDRA),
}
_IANA = "https://www.iana.org/assignments/media-types/"
_EU = "http://publications.europa.eu/resource/authority/"
# (fragment, IANA media type, label, EU file type where the EU vocabulary has one)
_MEDIA = (
    ("arrow", "application/vnd.apache.arrow.stream", "Arrow IPC stream", None),
    ("parquet", "application/vnd.apache.parquet", "Parquet", "PARQUET"),
    ("csv", "text/csv", "CSV", "CSV"),
)
_URL = re.compile(r"https?://[^\s<>\"'()]+[^\s<>\"'().,;:]")


@dataclass(frozen=True)
class CatalogInfo:
    """Who publishes the catalog: the node's URL, names and where to ask about the data."""

    url: str
    institution: str
    title: str
    description: str = ""
    contact: str | None = None


class RdfFormat(StrEnum):
    """The RDF serialisations served."""

    JSONLD = "jsonld"
    TURTLE = "turtle"

    @property
    def media_type(self) -> str:
        """The Content-Type of this serialisation."""
        if self is RdfFormat.JSONLD:
            return "application/ld+json"
        return "text/turtle; charset=utf-8"


@dataclass(frozen=True)
class PageView:
    """Where a page of the catalog is, where the walk starts, and the page after it (if any)."""

    this: str
    first: str
    next: str | None = None


def catalog_graph(
    datasets: Iterable[Dataset], info: CatalogInfo, view: PageView | None = None
) -> Graph:
    """The datasets as one ``dcat:Catalog`` published by the node's institution; ``view``: the
    page of the catalog they are (none: they are the whole catalog)."""
    g = _graph()
    catalog = URIRef(f"{info.url}/catalog")
    service = _service(g, info)
    g.add((catalog, RDF.type, DCAT.Catalog))
    g.add((catalog, DCTerms.title, Literal(info.title, lang="en")))
    g.add((catalog, DCTerms.description, Literal(_catalog_text(info), lang="en")))
    g.add((catalog, DCTerms.publisher, _publisher(g, info)))
    g.add((catalog, FOAF.homepage, _document(g, info.url)))
    g.add((catalog, DCAT.service, service))
    g.add((catalog, DCTerms.language, _english(g)))
    g.add((catalog, DCAT.themeTaxonomy, _themes(g)))
    modified: list[dt.date] = []
    for ds in datasets:
        node = _dataset(g, ds, info, service)
        g.add((catalog, DCAT.dataset, node))
        modified += [d for d in (ds.modified, ds.created) if d is not None]
    whole = view is None or (view.this == view.first and view.next is None)
    if modified and whole:
        g.add((catalog, DCTerms.modified, Literal(max(modified), datatype=XSD.date)))
    if not whole and view is not None:  # one page that is the whole catalog needs no view
        page = URIRef(view.this)
        g.add((catalog, HYDRA.view, page))
        g.add((page, RDF.type, HYDRA.PartialCollectionView))
        g.add((page, HYDRA.first, URIRef(view.first)))
        if view.next is not None:
            g.add((page, HYDRA.next, URIRef(view.next)))
    return g


def dataset_graph(ds: Dataset, info: CatalogInfo) -> Graph:
    """One dataset as a ``dcat:Dataset`` with its distributions."""
    g = _graph()
    _dataset(g, ds, info, _service(g, info))
    return g


def dataset_iri(ds: Dataset, base_url: str) -> URIRef:
    """The IRI naming a dataset (its metadata page, with a fragment for the thing itself)."""
    return URIRef(f"{base_url}/catalog/{ds.id}#dataset")


def render(graph: Graph, fmt: RdfFormat) -> bytes:
    """The graph serialised as compact JSON-LD or Turtle (UTF-8)."""
    if fmt is RdfFormat.JSONLD:
        text = graph.serialize(format="json-ld", context=CONTEXT, auto_compact=True)
    else:
        text = graph.serialize(format="turtle")
    return text.encode("utf-8")


_ASKED = {
    "application/ld+json": RdfFormat.JSONLD,
    "text/turtle": RdfFormat.TURTLE,
    "application/x-turtle": RdfFormat.TURTLE,
    "text/*": RdfFormat.TURTLE,
}
_NAMES = {"jsonld": RdfFormat.JSONLD, "json-ld": RdfFormat.JSONLD, "ttl": RdfFormat.TURTLE}
_NAMES |= {f.value: f for f in RdfFormat}


def negotiate(
    accept: str | None, format: str | None, *, default: RdfFormat | None = None
) -> RdfFormat | None:
    """The RDF form asked for by ``?format=`` (first) or ``Accept``; ``None`` is plain JSON.

    ``default`` is what JSON, ``*/*`` or no preference yields where the resource has no plain
    JSON form (a DCAT document). A request that accepts none of the forms is NotAcceptable.
    """
    if format:
        name = format.strip().lower()
        if name == "json":
            return default
        if name not in _NAMES:
            raise NotAcceptable(f"format {format!r}: use json, jsonld or turtle", format=format)
        return _NAMES[name]
    if not accept or not accept.strip():
        return default
    best: tuple[float, int] | None = None
    chosen: RdfFormat | None = default
    for order, (media, q) in enumerate(_ranges(accept)):
        known = media in _ASKED or media in ("application/json", "application/*", "*/*")
        if q <= 0 or not known:
            continue
        if best is None or (q, -order) > best:
            best, chosen = (q, -order), _ASKED.get(media, default)
    if best is None:
        raise NotAcceptable(
            "this resource is served as application/json, application/ld+json or text/turtle",
            accept=accept[:200],
        )
    return chosen


def _ranges(accept: str) -> Iterable[tuple[str, float]]:
    for part in accept.split(",")[:32]:
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        yield media.lower(), q


def _graph() -> Graph:
    g = Graph()
    for prefix, ns in CONTEXT.items():
        g.bind(prefix, Namespace(ns))
    return g


def _catalog_text(info: CatalogInfo) -> str:
    return info.description or (
        f"Materials research datasets of {info.title}, each with FAIR metadata and a "
        "PSPP-labelled column schema, served under the institution's access policies."
    )


def _publisher(g: Graph, info: CatalogInfo) -> URIRef:
    agent = URIRef(f"{info.url}/#publisher")
    g.add((agent, RDF.type, FOAF.Organization))
    g.add((agent, RDF.type, FOAF.Agent))
    g.add((agent, FOAF.name, Literal(info.title)))
    g.add((agent, DCTerms.identifier, Literal(info.institution)))
    return agent


def _contact(g: Graph, info: CatalogInfo) -> URIRef:
    card = URIRef(f"{info.url}/#contact")
    g.add((card, RDF.type, VCARD.Organization))
    g.add((card, RDF.type, VCARD.Kind))
    g.add((card, VCARD.fn, Literal(info.title)))
    web = info.contact if info.contact and "://" in info.contact else info.url
    if info.contact and web != info.contact:
        g.add((card, VCARD.hasEmail, URIRef(f"mailto:{info.contact}")))
    g.add((card, VCARD.hasURL, URIRef(web)))
    return card


def _document(g: Graph, url: str) -> URIRef:
    page = URIRef(url)
    g.add((page, RDF.type, FOAF.Document))
    return page


def _service(g: Graph, info: CatalogInfo) -> URIRef:
    service = URIRef(f"{info.url}/#slices")
    g.add((service, RDF.type, DCAT.DataService))
    g.add((service, DCTerms.title, Literal(f"{info.title}: governed slices", lang="en")))
    g.add((service, DCAT.endpointURL, URIRef(info.url)))
    g.add((service, DCAT.endpointDescription, URIRef(f"{info.url}/openapi.json")))
    g.add((service, DCTerms.publisher, _publisher(g, info)))
    g.add((service, DCAT.contactPoint, _contact(g, info)))
    return service


def _concept(g: Graph, iri: str, label: str, scheme: URIRef | None = None) -> URIRef:
    concept = URIRef(iri)
    g.add((concept, RDF.type, SKOS.Concept))
    g.add((concept, SKOS.prefLabel, Literal(label, lang="en")))
    if scheme is not None:
        g.add((concept, SKOS.inScheme, scheme))
    return concept


def _english(g: Graph) -> URIRef:
    english = URIRef(_EU + "language/ENG")
    g.add((english, RDF.type, DCTerms.LinguisticSystem))
    return english


def _themes(g: Graph) -> URIRef:
    scheme = URIRef(_EU + "data-theme")
    g.add((scheme, RDF.type, SKOS.ConceptScheme))
    g.add((scheme, DCTerms.title, Literal("Data theme", lang="en")))
    return scheme


def _license(g: Graph, spdx: str) -> URIRef:
    if spdx.startswith("LicenseRef-"):
        doc = URIRef(f"https://matgate.dev/licenses/{quote(spdx)}")
    else:
        doc = URIRef(f"http://spdx.org/licenses/{quote(spdx)}")
    g.add((doc, RDF.type, DCTerms.LicenseDocument))
    g.add((doc, DCTerms.identifier, Literal(spdx)))
    return doc


def _source(g: Graph, ds: Dataset, info: CatalogInfo) -> URIRef | None:
    # DCAT-AP's dct:source is a dcat:Dataset: the cited URL when the text gives one, else a
    # resource of this catalog described by the text.
    if not ds.source:
        return None
    found = _URL.search(ds.source)
    source = URIRef(found.group(0)) if found else URIRef(f"{info.url}/catalog/{ds.id}#source")
    g.add((source, RDF.type, DCAT.Dataset))
    g.add((source, DCTerms.title, Literal(ds.source, lang="en")))
    text = f"The source of {ds.title}: {ds.source}"
    g.add((source, DCTerms.description, Literal(text, lang="en")))
    return source


def _date(value: dt.date) -> Literal:
    if isinstance(value, dt.datetime):
        return Literal(value, datatype=XSD.dateTime)
    return Literal(value, datatype=XSD.date)


def _dataset(g: Graph, ds: Dataset, info: CatalogInfo, service: URIRef) -> URIRef:
    node = dataset_iri(ds, info.url)
    g.add((node, RDF.type, DCAT.Dataset))
    g.add((node, DCTerms.identifier, Literal(ds.persistent_id or ds.id)))
    g.add((node, DCTerms.title, Literal(ds.title, lang="en")))
    g.add((node, DCTerms.description, Literal(ds.description or ds.title, lang="en")))
    g.add((node, DCTerms.publisher, _publisher(g, info)))
    g.add((node, DCAT.contactPoint, _contact(g, info)))
    g.add((node, DCAT.landingPage, _document(g, f"{info.url}/catalog/{ds.id}")))
    g.add((node, DCAT.version, Literal(ds.version)))
    g.add((node, DCTerms.language, _english(g)))
    science = _concept(g, _EU + "data-theme/TECH", "Science and technology", _themes(g))
    g.add((node, DCAT.theme, science))
    for keyword in ds.keywords:
        g.add((node, DCAT.keyword, Literal(keyword, lang="en")))
    for name in ds.creators:
        creator = BNode()
        g.add((creator, RDF.type, FOAF.Agent))
        g.add((creator, FOAF.name, Literal(name)))
        g.add((node, DCTerms.creator, creator))
    if ds.created:
        g.add((node, DCTerms.issued, _date(ds.created)))
    if ds.modified:
        g.add((node, DCTerms.modified, _date(ds.modified)))
    if ds.persistent_id and ds.persistent_id.startswith("10."):
        g.add((node, FOAF.page, _document(g, f"https://doi.org/{ds.persistent_id}")))
    if (source := _source(g, ds, info)) is not None:
        g.add((node, DCTerms.source, source))
    if ds.citation:
        g.add((node, DCTerms.bibliographicCitation, Literal(ds.citation)))
    if ds.method:
        g.add((node, MG.method, Literal(ds.method)))
    if ds.embargo_until:
        g.add((node, MG.embargoUntil, _date(ds.embargo_until)))
    licence = _license(g, ds.license)
    g.add((node, DCTerms.license, licence))
    g.add((service, DCAT.servesDataset, node))
    stable = _concept(g, _EU + "planned-availability/STABLE", "stable")
    for fmt, media, label, eu_type in _MEDIA:
        dist = URIRef(f"{info.url}/catalog/{ds.id}#{fmt}")
        mtype = URIRef(_IANA + media)
        g.add((mtype, RDF.type, DCTerms.MediaType))
        if eu_type is not None:
            file_type = URIRef(_EU + "file-type/" + eu_type)
            g.add((file_type, RDF.type, DCTerms.MediaTypeOrExtent))
            g.add((dist, DCTerms["format"], file_type))
        g.add((dist, DCATAP.availability, stable))
        g.add((dist, RDF.type, DCAT.Distribution))
        g.add((dist, DCTerms.title, Literal(f"{ds.title} ({label})", lang="en")))
        g.add((dist, DCTerms.description, Literal(_slice_text(label), lang="en")))
        g.add((dist, DCAT.accessURL, URIRef(f"{info.url}/datasets/{ds.id}/slice")))
        g.add((dist, DCAT.accessService, service))
        g.add((dist, DCAT.mediaType, mtype))
        g.add((dist, DCTerms.license, licence))
        g.add((node, DCAT.distribution, dist))
    g.add((node, CSVW.tableSchema, _schema(g, ds)))
    return node


def _slice_text(label: str) -> str:
    return (
        f"The rows and columns the access policy permits, as {label}, for a declared purpose "
        "(POST with a bearer token); the signed manifest travels with the data."
    )


def _schema(g: Graph, ds: Dataset) -> BNode:
    schema = BNode()
    g.add((schema, RDF.type, CSVW.Schema))
    for col in ds.columns:
        c = BNode()
        g.add((schema, CSVW.column, c))
        g.add((c, CSVW.name, Literal(col.name)))
        g.add((c, CSVW.datatype, Literal(col.type.value)))
        g.add((c, MG.psppRole, Literal(col.pspp.value)))
        g.add((c, MG.sensitivity, Literal(col.sensitivity.value)))
        if col.description:
            g.add((c, DCTerms.description, Literal(col.description, lang="en")))
        if col.unit:
            g.add((c, MG.unit, Literal(col.unit)))
        if col.synthetic:
            g.add((c, MG.synthetic, Literal(True)))
    return schema
