"""The dashboard in a real browser (headless Chromium, tests/integration/browser.py) on the real
service (`agi-campaign run` as a child process on the Asterisk 22 sandbox): log in with the API
token, put a number on a Do-Not-Call list, upload a CSV, start the campaign with a click and a
confirm() dialog, watch the progress bar move and the state reach COMPLETED without a reload,
then download the attempts export and compare it with the attempt table. Asterisk's own events
(ChannelMonitor) count the calls. Screenshots of the campaign table and of the campaign page
(while it runs, and the whole page at the end), at 1280x800 and as a 390x844 phone, are saved
under build/screenshots/ (or $AGI_CAMPAIGN_SCREENSHOTS) and their paths printed.

The page elements it relies on (the contract with the dashboard's templates): login `#token`,
`#login-submit`, `#login-error`; table `#campaigns tr[data-campaign=NAME]` with `.state`,
`progress.progress` (value = settled, max = total) and `a.campaign-link`; campaign page
`#state`, `#progress`, `#start` (confirm()), `#action-result`, `#recent-attempts`, `#export`,
upload `#upload`, `#csv-file`, `#upload-submit`, `#import-report`, DNC `#dnc-number`,
`#dnc-add-submit` (confirm()), `#dnc-result`."""
import csv
import re

import pytest
from selenium.common.exceptions import (NoSuchElementException, StaleElementReferenceException,
                                        TimeoutException)
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from agi_campaign import phone
from agi_campaign.models import Attempt, Number, open_database
from agi_campaign.numbers import ATTEMPT_COLUMNS
from agi_campaign.testing import harness
from agi_campaign.testing.process import wait_port
from agi_campaign.testing.sandbox import free_port

from tests.integration.browser import screenshot_dir
from tests.integration.support import (campaign, check_invariants, destinations_recorded,
                                       expected_export, plan_numbers, prepared_service, wait_for)

TOKEN_ENV = "AGI_CAMPAIGN_TEST_DASHBOARD_TOKEN"
TOKEN = "dashboard-test-token-0123456789abcdef"
MAX_CHANNELS = 3
MAX_ATTEMPTS = 2
DNC_LINE, INVALID_LINE = 4, 6  # the CSV lines of the DNC and invalid rows (header: line 1)

ROW = '#campaigns tr[data-campaign="web"] '
# The table and the live part of the page are swapped by htmx every 2 s: an element found a
# moment ago may be gone, so waits look elements up again when that happens.
TRANSIENT = (NoSuchElementException, StaleElementReferenceException)

# One read of the live figures of the campaign page, in one script (htmx swaps elements: a
# WebDriver element found earlier may be stale by the time it is read).
LIVE = """
var p = document.getElementById('progress'), s = document.getElementById('state');
return [p && p.getAttribute('value'), p && p.getAttribute('max'),
        s && s.textContent.trim(), window.__acampMarker || null, location.href];"""


# the value cell of the report's row headed arguments[0]
REPORT_ROW = ("var rows = document.querySelectorAll('#report-body tr');"
              "for (var r of rows) { var h = r.querySelector('th');"
              " if (h && h.textContent.trim() == arguments[0])"
              " return r.querySelector('td').textContent.trim(); } return null;")


def write_upload(path, phones, dnc_phone):
    """The CSV a person uploads: national and E.164 forms, the DNC number at DNC_LINE, one
    invalid row at INVALID_LINE. Returns the path."""
    rows = ["%s,guest%d" % (p[2:] if i % 2 else p, i) for i, p in enumerate(phones)]
    rows.insert(DNC_LINE - 2, "%s,blocked-one" % dnc_phone)
    rows.insert(INVALID_LINE - 2, "not-a-number,x")
    path.write_text("phone,name\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def figure(text, label):
    """The number shown next to `label` in the import report's text ("Imported 14"), or
    None."""
    found = re.search(r"^%s\W{0,3}(\d+)$" % label, text, re.I | re.M)
    return int(found.group(1)) if found else None


def confirm(driver):
    """Accept the confirm() dialog an action button opens; return its text."""
    alert = WebDriverWait(driver, 10).until(EC.alert_is_present())
    text = alert.text
    alert.accept()
    return text


def until(driver, predicate, message, timeout=30):
    """WebDriverWait(...).until(predicate), looking elements up again after a swap."""
    return WebDriverWait(driver, timeout, ignored_exceptions=TRANSIENT).until(predicate,
                                                                              message)


def text_of(driver, element_id, timeout=30):
    """The text of element `element_id` once it has some."""
    return WebDriverWait(driver, timeout, ignored_exceptions=TRANSIENT).until(
        lambda d: (d.find_element(By.ID, element_id).text or "").strip() or False,
        "#%s stayed empty" % element_id)


def test_dashboard_login_upload_start_live_progress_export(asterisk, browser, tmp_path,
                                                           monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    (screenshot_dir() / "failure.png").unlink(missing_ok=True)  # an earlier run's
    port = free_port()
    plan = plan_numbers(14, 54000, seed=13)
    phones = list(plan)
    dnc_phone = harness.callee_number(54100, "answer")
    upload = write_upload(tmp_path / "guests.csv", phones, dnc_phone)
    config, service = prepared_service(
        tmp_path, {"main": asterisk},
        # call starts 0.6 s apart: the campaign lasts about 12 s, several of the page's 2 s
        # refreshes, so the bar is seen between empty and full
        {"web": campaign(max_channels=MAX_CHANNELS, max_attempts=MAX_ATTEMPTS,
                         retry_delay_s=1, delay_ms=600),
         "survey": campaign(max_channels=2)},  # never started: a second row in the table
        {},
        http={"port": port, "token_env": TOKEN_ENV, "max_upload_bytes": 1 << 20})
    open_database(config.database.url)
    base = "http://127.0.0.1:%d" % port
    driver = browser.driver
    with harness.ChannelMonitor(asterisk) as mon:
        try:
            service.start()
            wait_port(port, 30, service.proc)

            # log in: the dashboard sends a stranger to the login form; a wrong token is refused
            driver.get(base + "/")
            until(driver, lambda d: "/login" in d.current_url, "/ did not send to /login")
            driver.find_element(By.ID, "token").send_keys("not-the-token")
            driver.find_element(By.ID, "login-submit").click()
            assert "token" in text_of(driver, "login-error").lower()
            driver.find_element(By.ID, "token").clear()
            driver.find_element(By.ID, "token").send_keys(TOKEN)
            driver.find_element(By.ID, "login-submit").click()
            until(driver, lambda d: d.current_url.rstrip("/") == base,
                  "the right token did not lead to /")
            cookies = {c["name"]: c for c in driver.get_cookies()}
            assert cookies and all(TOKEN not in c["value"] for c in cookies.values())
            assert any(c.get("httpOnly") for c in cookies.values())
            until(driver, lambda d: d.execute_script(
                "return Array.from(document.querySelectorAll('#campaigns tr[data-campaign]'),"
                " r => r.dataset.campaign).sort()") == ["survey", "web"],
                  "the table has not one row per configured campaign")
            until(driver, lambda d: d.find_element(By.CSS_SELECTOR, ROW + ".state").text.strip()
                  == "READY", "web is not READY in the table")
            until(driver, lambda d: d.find_element(By.CSS_SELECTOR, ROW + "a.campaign-link")
                  .click() or True, "no link to the campaign page")
            until(driver, lambda d: d.current_url == base + "/campaigns/web", "no campaign page")
            until(driver, EC.presence_of_element_located((By.ID, "upload")), "no upload form")

            # a number on the Do-Not-Call list, through the page's DNC form (confirm())
            driver.find_element(By.ID, "dnc-number").send_keys(dnc_phone)
            driver.find_element(By.ID, "dnc-add-submit").click()
            confirm(driver)
            until(driver, lambda d: "blocked" in d.find_element(By.ID, "dnc-result").text,
                  "#dnc-result does not name the list")

            # upload: the importer's report shows the DNC number and the invalid row's line
            driver.find_element(By.ID, "csv-file").send_keys(str(upload))
            driver.find_element(By.ID, "upload-submit").click()
            report = text_of(driver, "import-report")
            print("FIGURES import report", report.replace("\n", " | "))
            stored = {n.phone for n in Number.select()}
            assert stored == set(phones)
            assert figure(report, "imported") == len(phones)
            assert figure(report, "rows") == len(phones) + 2
            assert figure(report, "invalid") == 1 and figure(report, "duplicates") == 0
            assert figure(report, "on a do-not-call list") == 1
            # the rejected rows with their lines (the table's cells joined by spaces)
            assert "\n%d not-a-number " % INVALID_LINE in report
            assert "\n%d %s on Do-Not-Call list blocked" % (DNC_LINE, dnc_phone) in report
            total = len(phones)

            # start with a click; from here on the page is never reloaded
            driver.execute_script("window.__acampMarker = 'loaded once';")
            page_url = driver.current_url
            driver.find_element(By.ID, "start").click()
            question = confirm(driver)
            assert "start" in question.lower()
            assert "start" in text_of(driver, "action-result").lower()
            driver.execute_script("window.scrollTo(0, 0);")  # the status at the top, in view
            seen, shots = [], []

            def completed(d):
                value, maximum, state, marker, url = d.execute_script(LIVE)
                assert marker == "loaded once" and url == page_url, "the page was reloaded"
                if value is not None:
                    reading = (int(float(value)), int(float(maximum)))
                    if not seen or seen[-1] != reading:
                        seen.append(reading)
                    # the page while it runs: at the first move, again once half has settled
                    if state == "RUNNING" and 0 < reading[0] < total and len(shots) < 2 and (
                            not shots or 2 * reading[0] >= total):
                        shots.append(browser.screenshot("campaign-running", full_page=False))
                return state == "COMPLETED"
            try:
                WebDriverWait(driver, 150, poll_frequency=0.1).until(completed)
            except TimeoutException:
                pytest.fail("#state not COMPLETED after 150 s; progress readings %s" % seen,
                            pytrace=False)
            print("FIGURES progress bar readings (value, max)", seen)
            values = [v for v, _ in seen]
            assert values == sorted(values)  # settled numbers never go back
            assert any(0 < v < total for v in values), "the progress bar never moved: %s" % seen
            until(driver, lambda d: d.execute_script(LIVE)[:2] == [str(total), str(total)],
                  "the bar does not show all settled")
            assert driver.execute_script(LIVE)[3:] == ["loaded once", page_url]

            wait_for(lambda: destinations_recorded("web"), 30)
            db_attempts = list(Attempt.select(Attempt, Number).join(Number)
                               .order_by(Attempt.id))
            placed = [a for a in db_attempts if a.outcome != "refused"]
            assert mon.started == len(placed)
            assert dnc_phone[1:] not in mon.dialed
            check_invariants("web", plan, mon, MAX_ATTEMPTS, MAX_CHANNELS,
                             dnc_phones=[dnc_phone])

            # recent attempts show numbers masked, as the logs do
            latest = phone.mask(db_attempts[-1].number.phone)
            recent = until(driver, lambda d: (lambda text: latest in text and text)(
                d.find_element(By.ID, "recent-attempts").text), "no masked latest attempt")
            assert not any(p in recent or p[2:] in recent for p in phones)

            # the report section, shown again by its button: the attempt table's figures
            driver.find_element(By.ID, "report-submit").click()
            until(driver, lambda d: d.execute_script(REPORT_ROW, "Attempts placed")
                  == str(len(placed)), "the report does not show %d attempts" % len(placed))
            answered = sum(a.outcome == "answered" for a in placed)
            assert driver.execute_script(REPORT_ROW, "Done") == str(
                Number.select().where(Number.status == "done").count())
            assert "answered %d" % answered in driver.find_element(
                By.CSS_SELECTOR, "#outcome-chart desc").get_attribute("textContent")
            browser.screenshot("campaign")

            # the export, downloaded by the browser with its session cookie
            driver.find_element(By.ID, "export").click()
            path = browser.downloaded(".csv", 60)
            with open(path, newline="", encoding="utf-8") as fh:
                table = list(csv.reader(fh))
            assert table[0] == list(ATTEMPT_COLUMNS)
            assert table[1:] == expected_export()
            print("FIGURES export", path.name, "rows", len(table) - 1, "attempts",
                  len(db_attempts), "legs_seen_by_asterisk", mon.started)

            # the campaign table: settled == total, at desktop and at phone size
            driver.get(base + "/")
            until(driver, lambda d: d.find_element(By.CSS_SELECTOR, ROW + ".state").text.strip()
                  == "COMPLETED", "web is not COMPLETED in the table")
            bar = driver.execute_script(
                "var b = document.querySelector(arguments[0]);"
                "return [b.getAttribute('value'), b.getAttribute('max')];",
                ROW + "progress.progress")
            assert bar == [str(total), str(total)]
            browser.screenshot("dashboard")
            browser.emulate_phone()
            driver.get(base + "/")
            until(driver, EC.presence_of_element_located((By.CSS_SELECTOR, ROW)), "no table")
            browser.screenshot("dashboard-phone")
            driver.get(base + "/campaigns/web")
            until(driver, lambda d: d.find_element(By.ID, "state").text.strip() == "COMPLETED",
                  "no campaign page at phone size")
            browser.screenshot("campaign-phone")
            browser.emulate_phone(False)
        except BaseException:
            print("page at failure:", driver.current_url)
            browser.screenshot("failure")
            print("service log:\n" + service.log_tail())
            raise
        finally:
            service.stop(graceful=True)
