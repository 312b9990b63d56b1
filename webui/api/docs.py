"""/api/docs: the JSON API described on one page built from the OpenAPI document, with nothing fetched from outside.

FastAPI's own docs page loads Swagger UI from a CDN and stays blank on an appliance without
internet; this page is plain HTML and CSS, so it works wherever the server does.
"""

from __future__ import annotations

import html
import json
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .3rem; }
code, pre { background: #f5f5f5; border-radius: 4px; }
pre { padding: .6rem; overflow-x: auto; }
.method { font-weight: bold; color: #fff; background: #2b7a0b; border-radius: 4px; padding: 0 .4rem; }
"""

ERRORS = (
    "Errors: 422 bad input, 413 body too large, 404 unknown route, 405 wrong method, 401 missing credentials, "
    "503 not ready or busy (with Retry-After). Every error body is "
    '<code>{"error": "…", "request_id": "…"}</code>.'
)


def render_docs(openapi: dict[str, Any], base_url: str = "http://127.0.0.1:7860") -> str:
    """The whole page: each route with its method, request body schema and a curl example against
    ``base_url``, the address the page itself was asked on, so that every example runs as printed."""
    base = html.escape(base_url.rstrip("/"))
    sections = []
    for path, operations in openapi.get("paths", {}).items():
        for method, operation in operations.items():
            sections.append(_operation(path, method, operation, base))
    title = html.escape(openapi.get("info", {}).get("title", "API"))
    return (
        f"<!doctype html><html lang='zh'><head><meta charset='utf-8'><title>{title} API</title>"
        f"<style>{STYLE}</style></head><body><h1>{title} HTTP API</h1>"
        "<p>机器可读的描述 · Machine-readable description: <a href='/api/openapi.json'>/api/openapi.json</a>. "
        "Gradio 接口 · Gradio API: <a href='/?view=api'>/?view=api</a>.</p>"
        f"<p>{ERRORS}</p>{''.join(sections)}</body></html>"
    )


def _operation(path: str, method: str, operation: dict[str, Any], base: str) -> str:
    content = operation.get("requestBody", {}).get("content", {})
    parts = [f"<h2 id='{html.escape(method + path)}'><span class='method'>{method.upper()}</span> "
             f"<code>{html.escape(path)}</code></h2>"]
    if operation.get("summary"):
        parts.append(f"<p>{html.escape(operation['summary'])}</p>")
    url = f"{base}{html.escape(path)}"
    verb = "" if method == "get" else f"-X {method.upper()} "
    for kind, media in content.items():
        schema = media.get("schema", {})
        parts.append(f"<h3>请求体 Request body ({html.escape(kind)})</h3>")
        parts.append(f"<pre>{html.escape(json.dumps(schema, ensure_ascii=False, indent=2))}</pre>")
        parts.append("<h3>示例 Example</h3>")
        if kind == "multipart/form-data":
            fields = " ".join(f"-F {html.escape(name)}={html.escape(str(value))}"
                              for name, value in _example(schema).items())
            parts.append(f"<pre>curl -s {fields} {url}</pre>")
        else:
            example = html.escape(json.dumps(_example(schema), ensure_ascii=False))
            parts.append(f"<pre>curl -s {url} -H 'Content-Type: application/json' -d '{example}'</pre>")
    if not content:
        parts.append(f"<pre>curl -s {verb}{url}</pre>")
    return "".join(parts)


def _example(schema: dict[str, Any]) -> dict[str, Any]:
    """A request built from the schema's required properties and their first example or default."""
    example: dict[str, Any] = {}
    for name in schema.get("required", []):
        prop = schema.get("properties", {}).get(name, {})
        if prop.get("examples"):
            example[name] = prop["examples"][0]
        elif "default" in prop:
            example[name] = prop["default"]
        else:
            example[name] = "…"
    return example
