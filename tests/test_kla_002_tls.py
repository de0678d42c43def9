"""kla-002 over https: the check connects to the address it resolved, and verifies TLS against the URL's host
name (SNI and certificate), not against the address. A real TLS server on loopback with a certificate of a
test CA made by the `openssl` command; the check is SubjectControle itself (create_app always uses certifi's
CA bundle, which no test server can satisfy), with a stand-in for DNS."""
from __future__ import annotations

import shutil
import ssl
import subprocess

import pytest

from ruwe_servers import RuweServer, lees_kop
from service.kla_002 import SubjectControle
from test_kla_002_ssrf import Dns

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A test CA and a server certificate for subject.test signed by it."""
    d = tmp_path_factory.mktemp("pki")

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=kla-002 test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
            "-subj", "/CN=subject.test")
    (d / "ext.cnf").write_text("subjectAltName=DNS:subject.test\nbasicConstraints=CA:FALSE\n"
                               "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf")
    return d


@pytest.fixture
def tls_server(pki):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki / "srv.pem", pki / "srv.key")
    namen: list[str | None] = []
    ctx.sni_callback = lambda sock, naam, _ctx: namen.append(naam)

    def handler(conn, server):
        conn.settimeout(5)
        tls = ctx.wrap_socket(conn, server_side=True)
        server.koppen.append(lees_kop(tls))
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        tls.close()

    srv = RuweServer(handler)
    srv.sni = namen
    yield srv
    srv.stop()


def controle(pki, dns: Dns, **kwargs) -> SubjectControle:
    return SubjectControle(timeout=5, max_bytes=1024, allowed_hosts=("subject.test", "andere.test"), resolver=dns,
                           **kwargs)


def test_https_naar_het_opgezochte_adres_met_sni_en_certificaat_van_de_host(pki, tls_server):
    dns = Dns({"subject.test": ["127.0.0.1", "127.0.0.2"]})
    url = f"https://subject.test:{tls_server.port}/personen/1"
    assert controle(pki, dns, ca_bestand=str(pki / "ca.pem")).fout(url) is None
    assert dns.vragen == ["subject.test"]
    assert tls_server.sni == ["subject.test"]
    [kop] = tls_server.koppen
    assert kop.startswith(b"GET /personen/1 HTTP/1.1\r\n")
    assert f"\r\nHost: subject.test:{tls_server.port}\r\n".encode() in kop


def test_een_certificaat_van_een_andere_host_wordt_geweigerd(pki, tls_server):
    """The server (at the resolved address) shows a certificate for subject.test; the URL names andere.test."""
    url = f"https://andere.test:{tls_server.port}/personen/1"
    fout = controle(pki, Dns({"andere.test": ["127.0.0.1"]}), ca_bestand=str(pki / "ca.pem")).fout(url)
    assert fout is not None
    assert fout.reason == f"De URL {url} kon niet opgehaald worden. Foutmelding: verbinding mislukt"
    assert tls_server.koppen in ([], [b""])                              # no request was sent


def test_zonder_vertrouwde_ca_wordt_geweigerd(pki, tls_server):
    """The default CA bundle (certifi) does not know the test CA."""
    url = f"https://subject.test:{tls_server.port}/personen/1"
    fout = controle(pki, Dns({"subject.test": ["127.0.0.1"]})).fout(url)
    assert fout is not None and fout.reason.endswith("Foutmelding: verbinding mislukt")
    assert tls_server.koppen in ([], [b""])
