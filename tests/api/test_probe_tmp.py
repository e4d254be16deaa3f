import requests, time
def test_probe(server):
    r = requests.post(server.api + "/txt2img", json={"prompt": "a red circle", "steps": 3, "width": 64, "height": 64, "seed": 5})
    print(r.status_code, r.json()["info"][:400])
    r = requests.post(server.api + "/txt2img", json={"prompt": "a", "steps": -3, "width": 64, "height": 64})
    print(r.status_code, r.text[:400])
    r = requests.post(server.api + "/txt2img", json={"prompt": "a", "steps": "x"})
    print(r.status_code, r.text[:400])
    r = requests.post(server.api + "/txt2img", data="{bad")
    print(r.status_code, r.text[:400])
