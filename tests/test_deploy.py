"""docs/deploy.md kept true: the shipped production config and systemd units, installed into a
temporary root (paths rewritten), work once hosts and addresses are filled in.

The administrator's CLI (``duban check --connect``, ``duban db upgrade``) reads the credentials in
place; the two services get theirs only through their own ``LoadCredential=`` lines (the folder in
/etc is moved away first), started with their own ``ExecStart``, ``WorkingDirectory`` and
``Environment``. Mail goes to a real SMTP server with STARTTLS and AUTH; the link in a township's
email opens its page on ``duban web`` (a real uvicorn), reached as nginx reaches it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from deploy_support import DEPLOY, DOMAIN, SMTP_LOGIN, Deployment, install, run_cli, use_smtp_server
from smtp_server import SmtpServer, free_port, self_signed_cert, server_tls_context
from support import DaemonProcess
from web_support import csrf_for

PASSWORD = "s3cret-password"
BASE_URL = f"https://duban.{DOMAIN}"
TOWN = "xipingzhen@" + DOMAIN  # 西坪镇人民政府


def test_a_first_deployment_from_the_shipped_files_sends_emails_whose_links_open_the_units_pages(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    with SmtpServer(
        tls_context=server_tls_context(cert, key), require_starttls=True, credentials={SMTP_LOGIN: PASSWORD}
    ) as server:
        site = install(tmp_path / "root", smtp_password=PASSWORD)
        use_smtp_server(site, server, cert)
        # (12 emails at the shipped 2 a second would cost the test 6 s; nothing else is changed)
        site.edit("rate_limit = 2 ", "rate_limit = 0 ")
        config = str(site.config)

        code, out, err = run_cli("--config", config, "check", "--connect")
        assert code == 0, err
        assert "已登录，未发送邮件" in out and server.received == []
        assert run_cli("--config", config, "db", "upgrade")[0] == 0

        daemon, web = site.unit("duban.service"), site.unit("duban-web.service")
        daemon_credentials, web_credentials = daemon.load_credentials(site), web.load_credentials(site)
        shutil.move(site.credentials, tmp_path / "moved-away")  # the services read only what they were given

        once = subprocess.run(
            [*daemon.exec_start, "--once"],
            cwd=daemon.working_directory,
            env=daemon.env(daemon_credentials),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert once.returncode == 0, once.stdout[-3000:] + once.stderr
        assert "links_unavailable" not in once.stdout
        assert len(server.received) == 12  # the 12 units of deploy/units.example.toml
        (town,) = [r for r in server.received if r.rcpt_tos == [TOWN]]
        assert town.tls and town.login == SMTP_LOGIN
        text = town.message.get_body(("plain",)).get_content().replace("\r\n", "\n")
        assert (
            "安县推进依法行政工作领导小组办公室\n联系电话：0571-8000 1000\n地址：安县府前路1号" in text
        )  # the signature
        link = re.search(re.escape(BASE_URL) + r"/u/\S+", text).group(0)

        port = free_port()
        portal = DaemonProcess(
            [*web.exec_start, "--listen", f"127.0.0.1:{port}"],
            web.env(web_credentials),
            web.working_directory,
        )
        try:
            portal.wait_for_event("web.listening", timeout=60)
            nginx = httpx.Client(  # what nginx does: the public address's path, to 127.0.0.1:PORT
                base_url=f"http://127.0.0.1:{port}",
                headers={
                    "Host": f"duban.{DOMAIN}",
                    "X-Forwarded-Proto": "https",
                    "X-Forwarded-For": "10.1.2.3",
                },
                timeout=60,
            )
            page = nginx.get(link.removeprefix(BASE_URL))
            assert page.status_code == 200
            assert "西坪镇人民政府" in page.text and "完善依法行政考评制度" in page.text

            # the portal emails the office its login link: it has the SMTP password too
            office = nginx.get("/office")
            token = csrf_for(office.text, "/office/login")
            pre = office.headers["set-cookie"]
            assert "; secure" in pre.lower()  # (base_url is https: the browser sends it back over https only)
            asked = nginx.post(
                "/office/login",
                data={"csrf": token, "email": f"fazhiban@{DOMAIN}"},
                headers={"Cookie": pre.split(";", 1)[0]},
            )
            assert asked.status_code == 303
            deadline = (
                time.monotonic() + 30
            )  # the mail goes after the answer (the same answer for any address)
            while not (logins := [r for r in server.received if r.rcpt_tos == [f"fazhiban@{DOMAIN}"]]):
                assert time.monotonic() < deadline, "no login mail reached the SMTP server in 30 s"
                time.sleep(0.05)
            (login,) = logins
            assert f"{BASE_URL}/office/login/" in login.message.get_content()
        finally:
            # uvicorn ends a graceful stop by re-raising SIGTERM: systemd counts that as a clean exit
            assert portal.stop(timeout=30) in (0, -15), portal.output()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("name", ["duban.service", "duban-web.service"])
def test_the_shipped_units_pass_systemd_analyze_verify(tmp_path, name):
    site = Deployment(tmp_path)
    unit = site.unit(name)
    text = (DEPLOY / name).read_text(encoding="utf-8")
    text = text.replace("/opt/duban/.venv/bin/duban", unit.exec_start[0])
    (tmp_path / name).write_text(text, encoding="utf-8")
    done = subprocess.run(["systemd-analyze", "verify", str(tmp_path / name)], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    for needed in ("web-secret", "smtp-password"):
        assert Path(f"/etc/duban/credentials/{needed}") in {
            Path(p.split(":", 1)[1]) for p in unit.raw["Service.LoadCredential"]
        }
    assert "postgresql.service" in unit.raw["Unit.After"][0].split()


def test_the_guide_names_the_shipped_files_keys_and_credentials():
    guide = (DEPLOY.parent / "docs/deploy.md").read_text(encoding="utf-8")
    for path in set(re.findall(r"/opt/duban/((?:deploy|examples|docs)/[\w./-]+)", guide)):
        assert (DEPLOY.parent / path).is_file(), path
    config = (DEPLOY / "config.production.toml").read_text(encoding="utf-8")
    table = guide.split("Fill in every `example.gov.cn`")[1].split("\n\n", 2)[1]
    rows = re.findall(r"^\| `\[([\w.]+)\](?: (\w+))?`", table, re.M)
    assert len(rows) == 8, rows
    for section, keys in rows:
        assert f"[{section}]" in config, section
        assert not keys or re.search(rf"^{keys} = ", config.split(f"[{section}]")[1], re.M), keys
    sources = {
        source
        for name in ("duban.service", "duban-web.service")
        for source in re.findall(
            r"^LoadCredential=[\w-]+:(\S+)$", (DEPLOY / name).read_text(encoding="utf-8"), re.M
        )
    }
    assert sources == {"/etc/duban/credentials/web-secret", "/etc/duban/credentials/smtp-password"}
    for source in sources:
        assert f"install -o root -g duban -m 0640 /dev/null {source}" in guide
    assert (
        'credentials = "credentials"' in config
        and "install -d -o root -g duban -m 0750 /etc/duban/credentials" in guide
    )
