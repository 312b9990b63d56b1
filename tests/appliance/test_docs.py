"""The README and docs/ hold up: the README stays a front door, and what they name (links, files, scripts, their
options, settings, routes, Gradio endpoints) exists in the repository."""

from __future__ import annotations

import os
import re
import tempfile
from functools import cache
from pathlib import Path

from model_loader.backends.bench import VARIABLES as BENCH_VARIABLES
from webui.settings_file import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
README_LIMIT = 20_000

LINK = re.compile(r"\]\(([^)\s]+)\)")
# A repository path as the pages write it: a top-level folder of this repository, then a file or folder.
REPO_PATH = re.compile(
    r"(?<![\w./-])((?:scripts|serving|supervisor|tests|model_loader|webui|docs|\.ci)/[\w./-]*[\w])(?![\w<])"
)
SETTING = re.compile(r"SEQGPT_[A-Z0-9_]+")
SCRIPT_CALL = re.compile(r"(?<!tests/)scripts/(\w+\.py)((?:[ \t]+[^\s`|;#]+)*)")  # the scripts, not their tests
CURL = re.compile(r"curl\s[^\n]*?(?:localhost|127\.0\.0\.1):\d+(/[\w/.-]*)")
GRADIO_CALL = re.compile(r"api_name=\"(/\w+)\"")


def text(page: Path) -> str:
    # A command continued with a backslash reads as one line.
    return page.read_text(encoding="utf-8").replace("\\\n", " ")


def relative(page: Path) -> str:
    return str(page.relative_to(ROOT))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    kept = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in page.read_text(encoding="utf-8").splitlines() if line.startswith("#")}


def test_readme_is_a_front_door_under_its_size_limit() -> None:
    size = README.stat().st_size

    assert size <= README_LIMIT, f"README.md is {size} bytes: move details to docs/ (limit {README_LIMIT})"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {link.split("#")[0] for link in LINK.findall(text(README))}

    assert DOCS, "docs/ has no page"
    assert [relative(page) for page in DOCS if relative(page) not in linked] == []


def test_every_relative_link_and_anchor_resolves() -> None:
    broken = []
    for page in PAGES:
        for link in LINK.findall(text(page)):
            if re.match(r"[a-z]+:", link):
                continue
            target, _, anchor = link.partition("#")
            path = (page.parent / target).resolve() if target else page
            if not path.exists():
                broken.append(f"{relative(page)}: {link} (no such file)")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{relative(page)}: {link} (no such heading)")

    assert broken == []


def test_every_repository_path_named_exists() -> None:
    missing = [
        f"{relative(page)}: {name}"
        for page in PAGES
        for name in REPO_PATH.findall(text(page))
        if not (ROOT / name).exists()
    ]

    assert missing == []


def test_scripts_named_as_commands_are_executable() -> None:
    named = {name for page in PAGES for name in re.findall(r"(?<![\w./-])scripts/[\w.-]+", text(page))}
    commands = sorted(name for name in named if name.endswith(".sh") or "." not in name)

    assert "scripts/start.sh" in commands and "scripts/supervisorctl" in commands
    assert [name for name in commands if not os.access(ROOT / name, os.X_OK)] == []


def test_every_option_given_to_a_python_script_is_one_its_parser_defines() -> None:
    unknown = []
    seen = 0
    for page in PAGES:
        for script, args in SCRIPT_CALL.findall(text(page)):
            source = (ROOT / "scripts" / script).read_text(encoding="utf-8")
            for option in re.findall(r"(?<!\S)(--[\w-]+)", args):
                seen += 1
                if f'"{option}"' not in source:
                    unknown.append(f"{relative(page)}: scripts/{script} {option}")

    assert seen > 10, "the pages should show the scripts' options"
    assert unknown == []


def settings_the_code_reads() -> set[str]:
    names = {name for name, _, _ in SETTINGS} | {"SEQGPT_WORKSPACE"} | set(BENCH_VARIABLES)
    # What the entry points read themselves (SEQGPT_START_TIMEOUT) or hand to supervisord (SEQGPT_HOME).
    for path in [*ROOT.glob("scripts/*.sh"), ROOT / "supervisor" / "supervisord.conf", ROOT / "Dockerfile"]:
        names |= set(SETTING.findall(path.read_text(encoding="utf-8")))
    return names


def test_every_setting_named_is_one_the_code_reads() -> None:
    known = settings_the_code_reads()
    # "SEQGPT_MAX_*" names a family, not a setting.
    unknown = {
        f"{relative(page)}: {name}"
        for page in PAGES
        for name in SETTING.findall(text(page))
        if not name.endswith("_") and name not in known
    }

    assert unknown == set()


def test_the_settings_page_lists_every_setting_of_the_settings_file() -> None:
    page = text(ROOT / "docs" / "settings.md")

    assert [name for name, _, _ in SETTINGS if f"| `{name}` |" not in page] == []


@cache
def app_routes_and_endpoints() -> tuple[dict[str, set[str]], set[str]]:
    """The app's HTTP routes with their methods, and its Gradio endpoint names, from an app that loads nothing."""
    from starlette.routing import Mount

    from model_loader import Engine, Settings
    from webui.app import build_app
    from webui.settings import ServerSettings

    workspace = Path(tempfile.mkdtemp(prefix="docs-routes-"))
    app = build_app(Engine(Settings(model_dir=workspace / "no-model")), ServerSettings(workspace=workspace))
    routes = {path: {method.upper() for method in item} for path, item in app.openapi()["paths"].items()}
    routes |= {"/api/docs": {"GET"}, "/api/openapi.json": {"GET"}}
    ui = next(route.app for route in app.routes if isinstance(route, Mount))
    endpoints = {f"/{fn.api_name}" for fn in ui.get_blocks().fns.values() if fn.api_name}
    return routes, endpoints


def curl_calls() -> list[tuple[str, str, str]]:
    calls = []
    for page in PAGES:
        for line in text(page).splitlines():
            for path in CURL.findall(line):
                sends = re.search(r"\s(-d|-F|--data)\s", line)
                as_query = re.search(r"\s(-[a-zA-Z]*G[a-zA-Z]*|--get)\s", line)  # curl -G puts -d in the URL
                method = "POST" if sends and not as_query else "GET"
                calls.append((relative(page), method, path))
    return calls


def test_every_route_curled_is_in_the_apps_route_table() -> None:
    routes, _ = app_routes_and_endpoints()
    calls = curl_calls()

    assert {path for page, _, path in calls if page == "README.md"} >= {
        "/api/classify", "/api/extract", "/api/generate", "/api/evaluate", "/health", "/metrics"
    }, "the README shows one curl per route"
    # A placeholder in a page (JOB_ID) stands for a path parameter of the route ({job_id}).
    templates = [(re.compile(re.sub(r"\\{\w+\\}", r"[A-Z_]+", re.escape(path)) + "$"), methods)
                 for path, methods in routes.items()]

    def known(method: str, path: str) -> bool:
        return any(pattern.match(path) and method in methods for pattern, methods in templates)

    assert [call for call in calls if not known(call[1], call[2])] == []


def test_gradio_endpoints_named_exist() -> None:
    _, endpoints = app_routes_and_endpoints()
    named = {(relative(page), name) for page in PAGES for name in GRADIO_CALL.findall(text(page))}
    in_readme = set(re.findall(r"`(/\w+)`", text(README))) & {"/classify", "/extract", "/generate"}

    assert in_readme == {"/classify", "/extract", "/generate"}, "the README names the Gradio endpoints"
    assert named and [call for call in named if call[1] not in endpoints] == []
    assert in_readme <= endpoints


def test_the_readme_docker_section_names_the_pinned_torch_and_its_driver() -> None:
    # tests/image checks the same against the built image; this holds the words to requirements.txt without one.
    (pinned,) = re.findall(r"^torch==([\d.]+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    docker = text(README).split("\n## Docker\n", 1)[1].split("\n## ", 1)[0]

    assert f"torch {pinned}" in docker
    assert re.search(r"CUDA \d+\.\d+", docker) and re.search(r"driver \d{3} or newer", docker)
