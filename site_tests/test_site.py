"""The built site, tested in headless Chromium as a reader would meet it (`make check-site`).

Every page of the book opens, every figure loads, no internal link is broken, no cell shows an
error, MathJax renders, and no request leaves the machine (the site reads offline). The interactive
figures (plotly.js, served by the site itself) are drawn, and Figure 6's slider, moved with the mouse,
shows the run's numbers. A screenshot of the methods chapter is kept in ``book/_build/screenshots/`` as
an artifact.
"""
from __future__ import annotations

import functools
import http.server
import re
import threading
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

SITE = Path(__file__).resolve().parents[1] / "book" / "_build" / "html"
SCREENSHOTS = SITE.parent / "screenshots"
RUN = SITE.parents[1] / "run"  # the run folder the site was built from, as `python -m ashlib book` copied it
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
REFRESH = re.compile(r'<meta http-equiv="refresh" content="0; url=([^"]+)"', re.IGNORECASE)


def html_files() -> list[Path]:
    if not (SITE / "index.html").exists():
        pytest.fail(f"no built site at {SITE}: run `make book` first")
    skip = {"genindex.html", "search.html"}
    return sorted(p for p in SITE.rglob("*.html")
                  if p.name not in skip and "_static" not in p.parts and "_sources" not in p.parts)


def redirect_target(path: Path) -> str | None:
    """The page a redirect stub (Jupyter Book's root ``index.html``) sends the reader to, else None."""
    match = REFRESH.search(path.read_text(errors="ignore")[:2000])
    return match.group(1) if match else None


def pages() -> list[str]:
    """The book's content pages (redirect stubs are tested on their own)."""
    return [str(p.relative_to(SITE)) for p in html_files() if redirect_target(p) is None]


def redirects() -> list[tuple[str, str]]:
    return [(str(p.relative_to(SITE)), target) for p in html_files() if (target := redirect_target(p))]


def open_page(browser, url: str, lands_on: str | None = None) -> None:
    """Load ``url`` and wait until the browser is at ``lands_on`` (a redirect's target; default ``url``)
    and that document has finished loading."""
    browser.get(url)
    wait = WebDriverWait(browser, 30)
    if lands_on is not None:
        wait.until(lambda b: b.current_url == lands_on)
    wait.until(lambda b: b.execute_script("return document.readyState") == "complete")


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def requested_urls(driver) -> list[str]:
    import json

    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_the_site_has_every_chapter():
    names = pages()
    for chapter in ("intro.html", "results.html", "references.html", "run/00_primer.html", "run/00_benchmark.html",
                    "run/01_methods.html",
                    "run/02_placements.html", "run/03_global_vs_local.html", "run/04_ash_rand.html",
                    "run/05_nac.html", "run/06_misp.html", "run/07_classroom.html", "run/08_transformer.html",
                    "run/09_when_ash_helps.html"):
        assert chapter in names


@pytest.mark.parametrize("page", pages())
def test_page_opens_with_figures_math_no_errors_and_nothing_external(server, browser, page):
    browser.get_log("performance")  # drop earlier pages' requests
    open_page(browser, urljoin(server, page))
    assert browser.title and "404" not in browser.title
    broken = browser.execute_script(
        "return Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
    assert broken == [], f"images that did not load: {broken}"
    errors = browser.execute_script(
        "return Array.from(document.querySelectorAll('.output.traceback, .output.error, .cell_output .traceback'))"
        ".map(e => e.innerText.slice(0, 200))")
    assert errors == [], f"cells show errors: {errors}"
    text = browser.execute_script("return document.body.innerText")
    assert "Traceback (most recent call last)" not in text
    if browser.execute_script("return document.querySelectorAll('.math').length"):
        browser.execute_script("return MathJax.startup.promise")
        assert browser.execute_script("return document.querySelectorAll('mjx-container').length") > 0, \
            "math on the page was not typeset"
    external = [u for u in requested_urls(browser)
                if urlparse(u).scheme in ("http", "https") and urlparse(u).hostname != "127.0.0.1"]
    assert external == [], f"the page fetched from outside the machine: {external}"


def test_the_root_redirects_to_the_introduction(server, browser):
    assert ("index.html", "intro.html") in redirects()
    for page, target in redirects():
        url = urljoin(server, page)
        open_page(browser, url, lands_on=urljoin(url, target))
        assert browser.title and "404" not in browser.title


def test_no_internal_link_is_broken(server, browser):
    broken = []
    for page in pages():
        open_page(browser, urljoin(server, page))
        links = browser.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
        for link in links:
            url, fragment = urldefrag(link)
            parsed = urlparse(url)
            if parsed.hostname != "127.0.0.1":
                continue
            target = SITE / parsed.path.lstrip("/")
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page} -> {link}")
            elif fragment and target.suffix == ".html":
                html = target.read_text(errors="ignore")
                if f'id="{fragment}"' not in html and f"name=\"{fragment}\"" not in html:
                    broken.append(f"{page} -> {link} (no #{fragment})")
    assert broken == [], "\n".join(broken)


def test_the_answer_to_when_ash_helps_is_on_the_introduction_and_the_chapter(server, browser):
    """The generated answer (glued from chapter 09) is rendered as text, not left as a glue directive."""
    for page in ("intro.html", "run/09_when_ash_helps.html", "results.html"):
        open_page(browser, urljoin(server, page))
        text = browser.execute_script("return document.body.innerText")
        assert "points against the energy score" in text and "{glue" not in text, page


def test_screenshot_of_the_methods_chapter(server, browser):
    open_page(browser, urljoin(server, "run/01_methods.html"))
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1400, min(height, 12000))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / "01_methods.png"
    assert browser.save_screenshot(str(path))
    assert path.stat().st_size > 50_000
    browser.set_window_size(1400, 1000)


def test_the_methods_chapter_shows_ash_s_and_folds_its_orchestration(server, browser):
    """The code the chapter is about is on the page (ashlib's ash_s and SCALE, printed from the
    installed package), SCALE's rows are in its tables, and orchestration and plotting cells are folded behind a toggle that opens."""
    open_page(browser, urljoin(server, "run/01_methods.html"))
    text = browser.execute_script("return document.body.innerText")
    assert "def ash_s(" in text and "def scale(" in text and "SCALE@85" in text
    folded = "document.querySelectorAll('div.tag_hide-input details.above-input')"
    assert browser.execute_script(f"return {folded}.length") >= 5
    first = f"{folded}[0]"
    assert browser.execute_script(f"return {first}.open") is False
    shown = f"return {first}.querySelector('.cell_input').checkVisibility()"  # closed details: not rendered
    assert browser.execute_script(shown) is False
    browser.execute_script(f"{first}.querySelector('summary').click()")
    assert browser.execute_script(f"return {first}.open") is True
    assert browser.execute_script(shown) is True


def test_an_exercise_s_solution_is_folded_and_opens_on_its_executed_output(server, browser):
    """sphinx-exercise: the chapter's exercises are admonitions ``div.exercise`` titled "Exercise N"
    (numbered through the book), each solution an admonition ``div.solution.dropdown`` whose title links
    to its exercise. sphinx-togglebutton folds it (class ``toggle-hidden``: the body stays in the page,
    hidden) behind a ``button.toggle-button`` in the title. A solution with code holds the executed cell
    and its output (``.cell_output``), shown once the toggle is clicked."""
    open_page(browser, urljoin(server, "run/01_methods.html"))
    titles = browser.execute_script(
        "return Array.from(document.querySelectorAll('div.exercise .admonition-title')).map(t => t.innerText)")
    numbers = [int(m.group(1)) for t in titles if (m := re.match(r"Exercise (\d+)", t))]
    assert len(titles) >= 2 and len(numbers) == len(titles), titles  # numbered through the book, in order
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), titles
    solution = ("Array.from(document.querySelectorAll('div.solution.dropdown'))"
                ".find(s => s.querySelector('.cell_output'))")
    assert browser.execute_script(f"return {solution} !== undefined")
    # the title names the exercise it solves and links to it
    target = browser.execute_script(f"return {solution}.querySelector('.admonition-title a').getAttribute('href')")
    assert target.startswith("#") and browser.execute_script(
        f"return document.getElementById('{target[1:]}').classList.contains('exercise')")
    shown = (f"return {solution}.querySelector('.cell_output')"
             ".checkVisibility({visibilityProperty: true, opacityProperty: true})")
    assert browser.execute_script(f"return {solution}.classList.contains('toggle-hidden')") is True
    assert browser.execute_script(shown) is False
    browser.execute_script(f"{solution}.querySelector('button.toggle-button').click()")
    WebDriverWait(browser, 10).until(lambda b: b.execute_script(shown))
    assert browser.execute_script(f"return {solution}.classList.contains('toggle-hidden')") is False
    output = browser.execute_script(f"return {solution}.querySelector('.cell_output').innerText")
    assert output.strip(), "the solution's code cell has no output"


def test_the_teachers_page_offers_every_student_version_for_download(server, browser):
    """The For-teachers page links one zip per assignment (Sphinx's download role); each downloads
    from the site and holds the student notebook, without a solution."""
    import io
    import json as json_module
    import urllib.request
    import zipfile

    open_page(browser, urljoin(server, "run/07_classroom.html"))
    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('a.download')).map(a => a.href)")
    zips = {Path(urlparse(u).path).name: u for u in links if u.endswith(".zip")}
    assert set(zips) == {f"student_{n}.zip" for n in ("ash", "experiment", "metrics", "nac")}, links
    for name, url in zips.items():
        assignment = name.removeprefix("student_").removesuffix(".zip")
        with urllib.request.urlopen(url, timeout=10) as answer:
            archive = zipfile.ZipFile(io.BytesIO(answer.read()))
        notebook = json_module.loads(archive.read(f"{assignment}/{assignment}.ipynb"))
        text = json_module.dumps(notebook)
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
        assert "NotImplementedError" in text


# ------------------------------------------------------------------------------ interactive figures

#: The interactive figures each chapter embeds (ashlib.book.interactive), by the id its notebook gives them.
FIGURES = {"run/01_methods.html": ["methods-figures-2-3", "methods-figure-6"],
           "run/03_global_vs_local.html": ["thresholds-figure-4"],
           "run/05_nac.html": ["nac-coverage-per-layer"]}
FIGURE_6 = "methods-figure-6"
STEP_TITLE = re.compile(r"(?P<method>\S+)@(?P<p>[\d.]+): AUROC (?P<auroc>[\d.]+) %, histogram IoU (?P<iou>[\d.]+)")


def drawn(browser, div_id: str) -> bool:
    """Whether plotly.js drew the figure ``div_id``: it marks the element and puts its SVG in it."""
    return browser.execute_script(
        "const g = document.getElementById(arguments[0]);"
        "return !!(g && g.classList.contains('js-plotly-plot') && g._fullLayout && g.querySelector('svg.main-svg'))",
        div_id)


@pytest.mark.parametrize("page", sorted(FIGURES))
def test_every_interactive_figure_is_drawn_by_the_sites_own_plotly(server, browser, page):
    """Each chapter's interactive figures are drawn, by the plotly.js in the site's ``_static`` (no other
    script of plotly's is on the page), and no figure of the page is left undrawn."""
    open_page(browser, urljoin(server, page))
    scripts = browser.execute_script(
        "return Array.from(document.scripts).map(s => s.src).filter(s => /plotly/i.test(s))")
    assert len(scripts) == 1 and urlparse(scripts[0]).path.endswith("/_static/plotly.min.js"), scripts
    for div_id in FIGURES[page]:
        WebDriverWait(browser, 30).until(lambda b: drawn(b, div_id), f"{page}: figure {div_id} was not drawn")
    undrawn = browser.execute_script(
        "return Array.from(document.querySelectorAll('.plotly-graph-div')).filter(g => !g._fullLayout).map(g => g.id)")
    assert undrawn == []


def test_the_figures_work_from_file_urls_too(browser):
    """Opened from disk (``file://``), as a reader with a copy of the site would: plotly.js still loads."""
    open_page(browser, (SITE / "run" / "01_methods.html").as_uri())
    WebDriverWait(browser, 30).until(lambda b: drawn(b, FIGURE_6))


def _distribution_rows() -> dict[str, dict]:
    """The run's Figure 6 numbers (``methods_distributions.csv``: p, AUROC, IoU), by p as the slider labels it."""
    import csv

    path = RUN / "methods_distributions.csv"
    assert path.is_file(), f"the run the site was built from has no {path.name}"
    with path.open(newline="") as f:
        return {f"{float(row['p']):g}": row for row in csv.DictReader(f)}


def _figure_6_title(browser) -> re.Match:
    text = browser.execute_script(
        "return document.getElementById(arguments[0]).querySelector('.gtitle').textContent", FIGURE_6)
    match = STEP_TITLE.fullmatch(text)
    assert match, f"Figure 6's title does not give a step's numbers: {text!r}"
    return match


def _matches_the_run(title: re.Match, rows: dict[str, dict]) -> None:
    row = rows[title["p"]]
    assert title["auroc"] == f"{float(row['AUROC']):.2f}", (title.group(0), row)
    assert title["iou"] == f"{float(row['IoU']):.3f}", (title.group(0), row)


def test_moving_the_figure_6_slider_shows_the_runs_numbers_for_each_p(server, browser):
    """The methods chapter's Figure 6 (ashlib.book.interactive.score_distributions): a reader clicks the
    slider's rail at each step's tick, with the mouse; the title's p, AUROC and histogram IoU change with
    it and are, at every step, the row of the run's ``methods_distributions.csv`` for that p."""
    rows = _distribution_rows()
    open_page(browser, urljoin(server, "run/01_methods.html"))
    WebDriverWait(browser, 30).until(lambda b: drawn(b, FIGURE_6))
    figure = browser.find_element(By.ID, FIGURE_6)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", figure)
    labels = browser.execute_script("return arguments[0]._fullLayout.sliders[0].steps.map(s => s.label)", figure)
    assert len(labels) >= 2 and sorted(labels) == sorted(rows), (labels, sorted(rows))
    title = _figure_6_title(browser)
    _matches_the_run(title, rows)
    seen = {title["p"]: (title["auroc"], title["iou"])}
    rail = figure.find_element(By.CSS_SELECTOR, ".slider-rail-touch-rect")
    ticks = figure.find_elements(By.CSS_SELECTOR, ".slider-tick-rect")
    assert len(ticks) == len(labels)
    for k in [*reversed(range(len(labels))), 0]:  # every step, then back to the first
        if labels[k] == title["p"]:
            continue
        offset = ticks[k].rect["x"] + ticks[k].rect["width"] / 2 - (rail.rect["x"] + rail.rect["width"] / 2)
        ActionChains(browser).move_to_element_with_offset(rail, round(offset), 0).click().perform()
        WebDriverWait(browser, 10).until(lambda b: _figure_6_title(b)["p"] == labels[k],
                                         f"clicking step {labels[k]} did not move the slider there")
        title = _figure_6_title(browser)
        assert browser.execute_script("return arguments[0]._fullLayout.sliders[0].active", figure) == k
        _matches_the_run(title, rows)
        seen[title["p"]] = (title["auroc"], title["iou"])
    assert set(seen) == set(labels) and len(set(seen.values())) > 1  # every step shown, and the numbers changed
