"""Fixture listing pages that follow schema.org, in the layouts portals use."""

from __future__ import annotations

import json
from typing import Any

NORTH = {"@type": "GeoCoordinates", "latitude": -6.1, "longitude": 106.9}  # inside north_plot
SOUTH = {"@type": "GeoCoordinates", "latitude": "-7.8", "longitude": "110.1"}  # inside south_plot


def jsonld_page(*documents: Any) -> str:
    scripts = "".join(f'<script type="application/ld+json">{json.dumps(d)}</script>' for d in documents)
    return f"<!doctype html><html><head><title>listings</title>{scripts}</head><body><h1>Tanah dijual</h1></body></html>"


#: One RealEstateListing: a whole-plot price in Indonesian notation and a land size.
SINGLE = jsonld_page(
    {
        "@context": "https://schema.org",
        "@type": "RealEstateListing",
        "url": "/tanah/1",
        "name": "Tanah 500 m² dekat tol",
        "offers": {"@type": "Offer", "price": "Rp 1,5 M", "priceCurrency": "IDR"},
        "about": {
            "@type": "Place",
            "geo": NORTH,
            "lotSize": {"@type": "QuantitativeValue", "value": 500, "unitCode": "MTK"},
        },
    }
)

#: An @graph with a per-m² UnitPriceSpecification and a per-are price in text.
GRAPH = jsonld_page(
    {
        "@context": "https://schema.org",
        "@graph": [
            {"@type": "WebPage", "name": "Hasil pencarian"},
            {
                "@type": "Offer",
                "url": "https://example.test/tanah/2",
                "priceSpecification": {
                    "@type": "UnitPriceSpecification",
                    "price": 3500000,
                    "priceCurrency": "IDR",
                    "unitCode": "MTK",
                },
                "itemOffered": {"@type": "Place", "geo": NORTH},
            },
            {
                "@type": ["RealEstateListing"],
                "url": "/tanah/3",
                "offers": {"@type": "Offer", "price": "Rp 45 jt per are"},
                "contentLocation": {"@type": "Place", "geo": SOUTH},
            },
        ],
    }
)

#: An ItemList of Products: numeric price, floor size as text, an address but no coordinates.
ITEM_LIST = jsonld_page(
    {
        "@context": "https://schema.org",
        "@type": "ItemList",
        "itemListElement": [
            {
                "@type": "ListItem",
                "position": 1,
                "item": {
                    "@type": "Product",
                    "url": "/rumah/4",
                    "offers": {"@type": "Offer", "price": 850000000, "priceCurrency": "IDR"},
                    "floorSize": "250 m²",
                    "address": {"@type": "PostalAddress", "addressLocality": "Bekasi"},
                },
            },
            {
                "@type": "ListItem",
                "position": 2,
                "item": {
                    "@type": "Product",
                    "url": "/rumah/5",
                    "offers": {"@type": "Offer", "price": "Rp 3.500.000/m²", "priceCurrency": "IDR"},
                },
            },
        ],
    }
)

#: Microdata: a per-hectare price specification and coordinates as meta tags.
MICRODATA = """<!doctype html><html><body>
<article itemscope itemtype="https://schema.org/RealEstateListing">
  <a itemprop="url" href="/kebun/6">Kebun 2 ha</a>
  <div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
    <div itemprop="priceSpecification" itemscope itemtype="https://schema.org/UnitPriceSpecification">
      <span itemprop="price" content="2000000000">Rp 2 M</span> / ha
      <meta itemprop="priceCurrency" content="IDR"><meta itemprop="unitCode" content="HAR">
    </div>
  </div>
  <div itemprop="contentLocation" itemscope itemtype="https://schema.org/Place">
    <div itemprop="geo" itemscope itemtype="https://schema.org/GeoCoordinates">
      <meta itemprop="latitude" content="-7.85"><meta itemprop="longitude" content="110.15">
    </div>
  </div>
</article>
<article itemscope itemtype="https://schema.org/RealEstateListing">
  <a itemprop="url" href="/tanah/7">Tanah</a>
  <div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
    <span itemprop="price">Rp 850 jt</span><meta itemprop="priceCurrency" content="IDR">
  </div>
  <div itemprop="floorSize" itemscope itemtype="https://schema.org/QuantitativeValue">
    <span itemprop="value">1.000</span><meta itemprop="unitText" content="m²">
  </div>
  <div itemprop="geo" itemscope itemtype="https://schema.org/GeoCoordinates">
    <meta itemprop="latitude" content="-6.15"><meta itemprop="longitude" content="106.95">
  </div>
</article>
</body></html>"""

#: Listings missing what a price per m² needs, or priced in another currency.
INCOMPLETE = jsonld_page(
    {"@context": "https://schema.org", "@type": "RealEstateListing", "url": "/a", "name": "Harga nego"},
    {
        "@context": "https://schema.org",
        "@type": "RealEstateListing",
        "url": "/b",
        "offers": {"@type": "Offer", "price": "Rp 1,2 M", "priceCurrency": "IDR"},
    },
    {
        "@context": "https://schema.org",
        "@type": "RealEstateListing",
        "url": "/c",
        "offers": {"@type": "Offer", "price": 90000, "priceCurrency": "USD"},
        "floorSize": {"@type": "QuantitativeValue", "value": 100, "unitCode": "MTK"},
    },
    {
        "@context": "https://schema.org",
        "@type": "RealEstateListing",
        "url": "/d",
        "offers": {"@type": "Offer", "price": "harga nego", "priceCurrency": "IDR"},
    },
)
