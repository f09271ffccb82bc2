"""Reports: report.json, changes.geojson, report.html and the latest.json pointer."""
