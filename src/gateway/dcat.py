"""DCAT 3 renderings (JSON-LD) of the catalog and its datasets."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from connectors.datasets import Dataset

__all__ = ["catalog_jsonld", "dataset_jsonld"]

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "csvw": "http://www.w3.org/ns/csvw#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "mg": "https://matgate.dev/ns#",
}
_MEDIA = ("application/vnd.apache.arrow.stream", "application/vnd.apache.parquet", "text/csv")


def dataset_jsonld(ds: Dataset, base_url: str, *, context: bool = True) -> dict[str, Any]:
    """One dataset as a ``dcat:Dataset``."""
    url = f"{base_url}/catalog/{ds.id}"
    doc: dict[str, Any] = {
        "@id": url,
        "@type": "dcat:Dataset",
        "dct:identifier": ds.persistent_id or ds.id,
        "dct:title": ds.title,
        "dct:description": ds.description,
        "dct:creator": [{"@type": "foaf:Agent", "foaf:name": c} for c in ds.creators],
        "dct:publisher": {"@type": "foaf:Organization", "foaf:name": ds.institution},
        "dcat:keyword": list(ds.keywords),
        "dcat:version": ds.version,
        "dct:license": _license_uri(ds.license),
        "dcat:landingPage": url,
        "dcat:distribution": [
            {
                "@type": "dcat:Distribution",
                "dcat:accessURL": f"{base_url}/datasets/{ds.id}/slice",
                "dcat:mediaType": media,
                "dct:license": _license_uri(ds.license),
            }
            for media in _MEDIA
        ],
        "csvw:tableSchema": {
            "csvw:column": [
                {
                    "csvw:name": c.name,
                    "csvw:datatype": c.type.value,
                    "dct:description": c.description,
                    "mg:unit": c.unit,
                    "mg:psppRole": c.pspp.value,
                    "mg:sensitivity": c.sensitivity.value,
                    "mg:synthetic": c.synthetic,
                }
                for c in ds.columns
            ]
        },
    }
    optional = {
        "dct:issued": ds.created.isoformat() if ds.created else None,
        "dct:modified": ds.modified.isoformat() if ds.modified else None,
        "dct:source": ds.source,
        "dct:bibliographicCitation": ds.citation,
        "mg:method": ds.method,
        "mg:embargoUntil": ds.embargo_until.isoformat() if ds.embargo_until else None,
    }
    doc.update({k: v for k, v in optional.items() if v is not None})
    if context:
        doc = {"@context": CONTEXT, **doc}
    return doc


def catalog_jsonld(datasets: Iterable[Dataset], base_url: str, title: str) -> dict[str, Any]:
    """Datasets as one ``dcat:Catalog``."""
    return {
        "@context": CONTEXT,
        "@id": f"{base_url}/catalog",
        "@type": "dcat:Catalog",
        "dct:title": title,
        "dcat:dataset": [dataset_jsonld(d, base_url, context=False) for d in datasets],
    }


def _license_uri(spdx: str) -> str:
    if spdx.startswith("LicenseRef-"):
        return f"https://matgate.dev/licenses/{spdx}"
    return f"https://spdx.org/licenses/{spdx}"
