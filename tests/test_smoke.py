"""The walking skeleton: create a klant over HTTP and read it back."""
from conftest import klant_body


def test_create_then_read(api, subject_url):
    created = api.post("/klanten", klant_body(subject_url))
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == created.json()["url"]
    assert created.headers["API-version"] == "1.0.0"
    read = api.get(created.json()["url"])
    assert read.status_code == 200
    assert read.json() == created.json()


def test_the_leak_check_catches_internals():
    """conftest.assert_no_leak runs on every response of the suite; it must recognise what it looks for."""
    import pytest
    import requests
    from conftest import assert_no_leak
    for leak in ('Traceback (most recent call last):', 'sqlalchemy.exc.IntegrityError', 'File "/work/main/x.py"',
                 "SELECT klant.id FROM klant", "/root/app/service/klanten.py"):
        response = requests.Response()
        response._content = leak.encode()
        response.url = "http://127.0.0.1/api/v1/klanten"
        response.request = requests.Request("GET", response.url).prepare()
        with pytest.raises(AssertionError):
            assert_no_leak(response)


def test_a_filter_value_with_a_nul_character_matches_nothing(api, subject_url):
    """Regression (found by schemathesis on PostgreSQL, which refuses NUL in SQL strings): 200 with no results."""
    assert api.post("/klanten", klant_body(subject_url, functie="a")).status_code == 201
    for query in ("functie=a%00", "functie=%00", "achternaam=x%00y&page=last"):
        response = api.get(f"/klanten?{query}")
        assert response.status_code == 200, response.text
        assert response.json()["count"] == 0
