"""docs/openapi.json is the schema the HTTP API serves: regenerate it with `make openapi`
(python -m agi_campaign.api > docs/openapi.json) when the API changes."""
import json
import pathlib

from agi_campaign import api

PUBLISHED = pathlib.Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_openapi_published_schema_is_current():
    current = json.loads(json.dumps(api.create_app(None).openapi()))
    assert json.loads(PUBLISHED.read_text("utf-8")) == current, (
        "docs/openapi.json is stale: run `make openapi` and commit it")


def test_openapi_schema_lists_every_endpoint_with_bearer_auth():
    schema = api.create_app(None).openapi()
    paths = schema["paths"]
    for path in ("/api/v1/campaigns", "/api/v1/campaigns/{name}/start",
                 "/api/v1/campaigns/{name}/numbers", "/api/v1/campaigns/{name}/attempts",
                 "/api/v1/campaigns/{name}/attempts.csv", "/api/v1/dnc/lists/{list_name}/add",
                 "/api/v1/dnc/check"):
        assert path in paths
        operation = next(iter(paths[path].values()))
        assert operation.get("security") == [{"HTTPBearer": []}], path
    upload = paths["/api/v1/campaigns/{name}/numbers"]["post"]["requestBody"]["content"]
    assert set(upload) == {"text/csv", "application/json"}
    assert "NumbersUpload" in schema["components"]["schemas"]
