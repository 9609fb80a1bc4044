"""DCAT-AP 3: the catalog and each dataset pass the profile's official SHACL shapes (pyshacl),
with IRIs where the profile wants IRIs, served as JSON-LD or Turtle by content negotiation."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from pyshacl import validate
from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, FOAF, RDF, SH, XSD

NI = "aurora/ni-superalloys"
DATASETS = [NI, "aurora/steels-yield", "aurora/expt-gap", "aurora/magpie-elements"]
STANDARDS = Path(__file__).resolve().parent.parent / "standards" / "dcat-ap-3.0.0"
DCAT = Namespace("http://www.w3.org/ns/dcat#")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
TURTLE = {"Accept": "text/turtle"}


@functools.cache
def shapes(*names: str) -> Graph:
    g = Graph()
    for name in names:
        g.parse(STANDARDS / name, format="turtle")
    return g


def violations(data: Graph, *names: str) -> list[str]:
    """The messages of every SHACL result of the given shape files (empty when it conforms)."""
    _, report, _ = validate(data, shacl_graph=shapes(*names), inference="none", advanced=True)
    found = []
    for result in report.subjects(RDF.type, SH.ValidationResult):
        path = report.value(result, SH.resultPath)
        focus = report.value(result, SH.focusNode)
        severity = report.value(result, SH.resultSeverity)
        found.append(
            f"{severity.split('#')[-1]} {focus} {path}: {report.value(result, SH.resultMessage)}"
        )
    return found


def fetch(api, auth, path: str, persona: str = "ml-user", **headers: str) -> Graph:
    r = api.get(path, headers={**auth[persona], **headers})
    assert r.status_code == 200, r.text
    kind = "json-ld" if r.headers["content-type"].startswith("application/ld+json") else "turtle"
    return Graph().parse(data=r.text, format=kind)


@pytest.fixture(scope="module")
def catalog(api, auth) -> Graph:
    return fetch(api, auth, "/catalog", **TURTLE)


def test_catalog_conforms_to_the_mandatory_shapes_and_ranges(catalog):
    assert violations(catalog, "shapes.ttl", "range.ttl") == []


@pytest.mark.parametrize("dataset", DATASETS)
def test_each_dataset_conforms(api, auth, dataset):
    for path in (f"/catalog/{dataset}/dcat", f"/catalog/{dataset}?format=jsonld"):
        assert violations(fetch(api, auth, path), "shapes.ttl", "range.ttl") == []


def test_recommended_properties_report(catalog):
    # Recommended properties are warnings, not violations: report which remain, and hold the
    # catalog's own datasets and distributions to the recommendations matgate can meet.
    remaining = violations(catalog, "shapes_recommended.ttl")
    assert all(line.startswith("Warning") for line in remaining)
    by_path: dict[str, int] = {}
    for line in remaining:
        path = line.split()[2].rstrip(":")
        by_path[path] = by_path.get(path, 0) + 1
    print("\nDCAT-AP recommended properties not given:", by_path)
    demo = tuple(f"/catalog/{d}#dataset " for d in DATASETS)  # other tests may register more
    ours = [line for line in remaining if any(d in line for d in demo) or "/catalog " in line]
    missing = {line.split()[2].rstrip(":") for line in ours}
    # Space and time coverage do not apply to these datasets; neither has a licence of its own.
    assert missing <= {
        str(DCTERMS.spatial),
        str(DCTERMS.temporal),
        str(DCTERMS.issued),
        str(DCTERMS.license),
    }, missing


def test_the_validator_bites(catalog):
    # Put a distribution's licence back as a string, its access URL as a string and drop the
    # publishers: each is caught.
    broken = Graph()
    for triple in catalog:
        broken.add(triple)
    dist = URIRef(f"{_base(catalog)}/catalog/{NI}#csv")
    broken.remove((dist, DCTERMS.license, None))
    broken.add((dist, DCTERMS.license, Literal("Apache-2.0")))
    broken.remove((dist, DCAT.accessURL, None))
    broken.add((dist, DCAT.accessURL, Literal(f"{_base(catalog)}/datasets/{NI}/slice")))
    broken.remove((None, DCTERMS.publisher, None))
    found = violations(broken, "shapes.ttl", "range.ttl")
    assert any(str(DCTERMS.license) in f and "#csv" in f for f in found), found
    assert any(str(DCAT.accessURL) in f for f in found), found
    assert any(str(DCTERMS.publisher) in f for f in found), found


def _base(g: Graph) -> str:
    (catalog,) = g.subjects(RDF.type, DCAT.Catalog)
    return str(catalog).removesuffix("/catalog")


def test_iris_typed_dates_contact_and_publisher(catalog):
    base = _base(catalog)
    cat = URIRef(f"{base}/catalog")
    assert catalog.value(cat, DCTERMS.description) and catalog.value(cat, DCTERMS.publisher)
    assert set(catalog.objects(cat, DCAT.dataset)) >= {
        URIRef(f"{base}/catalog/{d}#dataset") for d in DATASETS
    }
    ds = URIRef(f"{base}/catalog/{NI}#dataset")
    assert catalog.value(ds, DCTERMS.license) == URIRef("http://spdx.org/licenses/Apache-2.0")
    assert catalog.value(ds, DCAT.landingPage) == URIRef(f"{base}/catalog/{NI}")
    source = catalog.value(ds, DCTERMS.source)
    assert isinstance(source, URIRef) and (source, RDF.type, DCAT.Dataset) in catalog
    issued = catalog.value(ds, DCTERMS.issued)
    assert issued is None or issued.datatype in (XSD.date, XSD.dateTime)
    assert any(lit.datatype == XSD.date for lit in catalog.objects(None, DCTERMS.issued)), (
        "no dataset has a typed issue date"
    )
    contact = catalog.value(ds, DCAT.contactPoint)
    assert (contact, RDF.type, VCARD.Kind) in catalog and catalog.value(contact, VCARD.fn)
    assert catalog.value(contact, VCARD.hasEmail) == URIRef("mailto:data-desk@aurora.example")
    assert (catalog.value(ds, DCTERMS.publisher), RDF.type, FOAF.Agent) in catalog
    dists = list(catalog.objects(ds, DCAT.distribution))
    media = {str(catalog.value(d, DCAT.mediaType)) for d in dists}
    assert media == {
        "https://www.iana.org/assignments/media-types/application/vnd.apache.arrow.stream",
        "https://www.iana.org/assignments/media-types/application/vnd.apache.parquet",
        "https://www.iana.org/assignments/media-types/text/csv",
    }
    assert {catalog.value(d, DCAT.accessURL) for d in dists} == {
        URIRef(f"{base}/datasets/{NI}/slice")
    }


def test_json_ld_and_turtle_say_the_same(api, auth, catalog):
    from rdflib.compare import isomorphic

    jsonld = fetch(api, auth, "/catalog", Accept="application/ld+json")
    assert isomorphic(jsonld, catalog)
    assert isomorphic(fetch(api, auth, "/catalog.jsonld"), catalog)


@pytest.mark.parametrize(
    ("path", "accept", "status", "media"),
    [
        ("/catalog", None, 200, "application/json"),
        ("/catalog", "application/json", 200, "application/json"),
        ("/catalog", "*/*", 200, "application/json"),
        ("/catalog", "application/ld+json", 200, "application/ld+json"),
        ("/catalog", "text/turtle", 200, "text/turtle; charset=utf-8"),
        ("/catalog", "text/turtle;q=0.5, application/ld+json", 200, "application/ld+json"),
        ("/catalog", "application/ld+json;q=0.2, text/turtle;q=0.9", 200, "text/turtle"),
        ("/catalog", "application/xml", 406, "application/problem+json"),
        ("/catalog?format=turtle", "application/json", 200, "text/turtle"),
        ("/catalog?format=ttl", None, 200, "text/turtle"),
        ("/catalog?format=jsonld", None, 200, "application/ld+json"),
        ("/catalog?format=rdfxml", None, 406, "application/problem+json"),
        ("/catalog.jsonld", None, 200, "application/ld+json"),
        ("/catalog.jsonld", "text/turtle", 200, "text/turtle"),
        (f"/catalog/{NI}", None, 200, "application/json"),
        (f"/catalog/{NI}", "text/turtle", 200, "text/turtle"),
        (f"/catalog/{NI}/dcat", None, 200, "application/ld+json"),
        (f"/catalog/{NI}/dcat", "application/json", 200, "application/ld+json"),
        (f"/catalog/{NI}/dcat?format=turtle", None, 200, "text/turtle"),
        (f"/catalog/{NI}/dcat", "image/png", 406, "application/problem+json"),
    ],
)
def test_content_negotiation(api, auth, path, accept, status, media):
    headers = dict(auth["ml-user"])
    if accept is not None:
        headers["Accept"] = accept
    r = api.get(path, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(media)
    if status == 200 and "json" not in media:
        Graph().parse(data=r.text, format="turtle")


def test_only_what_may_be_discovered(api, app):
    token = app.state.node.issuer.mint("zed", institution="zeta", roles=["member"])
    g = fetch(api, {"zed": {"Authorization": f"Bearer {token}"}}, "/catalog", "zed", **TURTLE)
    # a stranger sees only what the policy opens to ``public``: the published band gaps
    listed = [str(d) for d in g.objects(None, DCAT.dataset)]
    assert list(g.subjects(RDF.type, DCAT.Catalog))
    assert [d.rsplit("/catalog/", 1)[1] for d in listed] == ["aurora/expt-gap#dataset"]
    assert violations(g, "shapes.ttl", "range.ttl") == []
    r = api.get(f"/catalog/{NI}/dcat", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 404
