import socket, time, logging
from tests.web_support import *  # noqa
from tests.web_support import web_fixture, web_template_fixture  # noqa

def test_probe(web, caplog):
    caplog.set_level(logging.INFO)
    link = web.unit_link("town-00")
    oid = web.obligation_id("town-00", "T2")
    page = get(link).text
    token = csrf_for(page, f"/o/{oid}/complete")
    path = link.removeprefix(web.url)
    b = "xx"
    for target, ctype, body in (
        (f"{path}/o/{oid}/complete", f"multipart/form-data; boundary={b}",
         f'--{b}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{token}\r\n--{b}\r\nContent-Disposition: form-data; name="files"; filename="a.pdf"\r\n\r\n%PDF-1.4\n'.encode() + b"0"*100000),
        ("/office/login", "application/x-www-form-urlencoded", b"csrf=abc&email=x"),
    ):
        with socket.create_connection(("127.0.0.1", web.server.port)) as s:
            s.sendall(f"POST {target} HTTP/1.1\r\nHost: x\r\nCookie: duban_pre=abc\r\nContent-Type: {ctype}\r\nContent-Length: 500000\r\n\r\n".encode() + body)
            time.sleep(0.5)
        time.sleep(0.5)
    for r in caplog.records:
        print("REC", r.name, r.levelname, r.getMessage()[:200], bool(r.exc_info))
