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
