"""hapi-runner serve: a real server on a loopback port answers as predict does, refuses bad input, batches, stops cleanly."""

import http.client
import io
import json
import random
import re
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from cdp import Browser, find_chromium
from conftest import tiny_config
from serving import Server, multipart, predict, request

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install -e '.[serve]'")

MAX_QUEUE = 24  # more than the 16 concurrent clients below, so only the queue test fills it


@pytest.fixture(scope="module")
def run(data_root, tmp_path_factory):
    """A one-epoch LeNet run on generated MNIST files, exported, and eight of its evaluation images as PNG files."""
    from hapi_runner import Runner

    tmp = tmp_path_factory.mktemp("serve")
    runner = Runner(tiny_config(data_root, tmp, batch_size=8))
    runner.fit()
    images = []
    for i in range(8):
        path = tmp / f"digit_{i}.png"
        Image.fromarray(runner.eval_data.images[i, 0]).save(path)
        images.append(path)
    return runner.run_dir, images


@pytest.fixture(scope="module")
def expected(run):
    """What hapi-runner predict answers for each image, top 3."""
    from hapi_runner.deploy.predict import predict_files

    run_dir, images = run
    return predict_files(run_dir, [str(p) for p in images], top_k=3, threads=1)


@pytest.fixture(scope="module")
def servers(run):
    """The module's server, started again only after a test stopped it (starting one costs seconds)."""
    running = []

    def get():
        if not running or running[-1].process.poll() is not None:
            running.append(Server(run[0], "--threads", "1", "--max-queue", str(MAX_QUEUE), "--max-upload", "256k"))
        return running[-1]

    yield get
    assert running[-1].stop() == 0


@pytest.fixture
def server(servers):
    return servers()


def same_answer(got, want):
    """Equal to predict's answer: the classes, and the probabilities to the digits both print."""
    assert [t["class_id"] for t in got["top_k"]] == [t["class_id"] for t in want["top_k"]]
    assert got["class_name"] == want["class_name"]
    for mine, theirs in zip(got["top_k"], want["top_k"]):
        assert mine["probability"] == pytest.approx(theirs["probability"], rel=1e-5)
        assert f"{mine['probability']:.3f}" == f"{theirs['probability']:.3f}"


def test_answers_equal_predicts_as_body_and_as_multipart(server, run, expected):
    images = run[1]
    for path, want in zip(images, expected):
        status, answers = predict(server.port, path.read_bytes(), top_k=3)
        assert status == 200 and len(answers) == 1 and answers[0]["file"] is None
        same_answer(answers[0], want)
    body, headers = multipart([(p.name, p.read_bytes()) for p in images[:5]])
    status, _, raw = request(server.port, "POST", "/predict?top_k=3", body, headers)
    answers = json.loads(raw)
    assert status == 200 and [a["file"] for a in answers] == [p.name for p in images[:5]]
    for got, want in zip(answers, expected):
        same_answer(got, want)


def test_health_metadata_openapi_and_the_page(server, run):
    assert request(server.port, "GET", "/health")[0] == 200
    status, _, raw = request(server.port, "GET", "/metadata")
    meta = json.loads(raw)
    assert status == 200 and meta["model"] == "lenet" and len(meta["class_names"]) == 10
    assert meta["input_shape"] == [1, 28, 28] and meta["export_check"]["verified"] is True
    final = json.loads(open(f"{run[0]}/results.json").read())["final_eval"]
    assert meta["run_metrics"]["acc_top1"] == final["acc_top1"]
    paths = json.loads(request(server.port, "GET", "/openapi.json")[2])["paths"]
    assert {"/predict", "/health", "/metadata"} <= set(paths) and "multipart/form-data" in json.dumps(paths["/predict"])
    status, headers, page = request(server.port, "GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'id="pick"' in page and b"http" not in page.replace(b"http-equiv", b"")  # nothing fetched from elsewhere


def _png(array, **save):
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG", **save)
    return out.getvalue()


def _deflate_repeated(block: bytes, times: int) -> bytes:
    """zlib data of ``block * times``, compressing ``block`` once: after a full flush the compressor starts afresh,
    so each further copy compresses to the same bytes."""
    compressor = zlib.compressobj(9)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    checksum = 1
    for _ in range(times):
        checksum = zlib.adler32(block, checksum)
    return first + again * (times - 1) + b"\x03\x00" + struct.pack(">I", checksum)  # an empty final block, the checksum


def _bomb(side=30000):
    """A valid black 1-bit PNG of side x side pixels: 900 M pixels in about 100 KB."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (side + 7) // 8)  # filter byte 0, then the packed bits
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    idat = _deflate_repeated(row * 1000, side // 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


BAD = [
    ("not an image", "POST", "/predict", lambda good: b"just some text", {}, 400, r"'body' is not an image"),
    ("truncated", "POST", "/predict", lambda good: good[: len(good) // 2], {}, 400, r"truncated"),
    ("empty", "POST", "/predict", lambda good: b"", {}, 400, r"'body' is empty"),
    ("bomb", "POST", "/predict", lambda good: _bomb(), {}, 413, r"900,000,000 pixels.*--max-pixels"),
    ("too large", "POST", "/predict", lambda good: bytes(300 * 1024), {}, 413, r"larger than the 262,144 bytes"),
    ("no file field", "POST", "/predict", lambda good: multipart([("a.png", good)], field="image")[0], "multipart", 400,
     r"no file field"),
    ("bad top_k", "POST", "/predict?top_k=zero", lambda good: good, {}, 422, r"top_k"),
    ("top_k 0", "POST", "/predict?top_k=0", lambda good: good, {}, 422, r"top_k"),
    ("wrong method", "GET", "/predict", lambda good: None, {}, 405, r"GET is not allowed on /predict; use POST"),
    ("wrong path", "POST", "/classify", lambda good: b"x", {}, 404, r"there is no /classify"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_gets_a_4xx_one_line_json_error_and_the_server_goes_on(server, run, expected, case):
    _, method, path, make, headers, status, match = case
    good = run[1][0].read_bytes()
    body = make(good)
    if headers == "multipart":
        headers = {"Content-Type": multipart([("a.png", good)], field="image")[1]["Content-Type"]}
        body, headers = multipart([("a.png", good)], field="image")
    got, _, raw = request(server.port, method, path, body, headers)
    assert got == status
    message = json.loads(raw)["error"]
    assert re.search(match, message) and "\n" not in message and "Traceback" not in message
    assert predict(server.port, good, top_k=3)[1][0]["class_id"] == expected[0]["class_id"]


def test_an_oversized_body_is_refused_before_it_is_sent_whole(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("POST", "/predict")
    conn.putheader("Content-Length", str(500 * 2**20))
    conn.endheaders()
    conn.send(bytes(1024))  # 1 KB of the 500 MB announced
    started = time.monotonic()
    response = conn.getresponse()
    assert response.status == 413 and "--max-upload" in json.loads(response.read())["error"]
    assert time.monotonic() - started < 5
    conn.close()


def test_a_full_queue_answers_503_with_retry_after_and_recovers(server, run):
    waiting = []
    for _ in range(MAX_QUEUE):  # requests whose bodies never finish arriving hold their places in the queue
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.putrequest("POST", "/predict")
        conn.putheader("Content-Length", "1000")
        conn.endheaders()
        conn.send(b"x")
        waiting.append(conn)
    time.sleep(0.5)
    status, headers, raw = request(server.port, "POST", "/predict", run[1][0].read_bytes())
    assert status == 503 and headers.get("retry-after") == "1" and "busy" in json.loads(raw)["error"]
    for conn in waiting:
        conn.close()
    deadline = time.monotonic() + 10
    while predict(server.port, run[1][0].read_bytes())[0] != 200:
        assert time.monotonic() < deadline, "the queue never emptied after its clients left"
        time.sleep(0.1)


def test_200_requests_from_16_clients_each_get_their_own_answer(server, run, expected):
    images = [p.read_bytes() for p in run[1]]

    def client(seed):
        rng = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        outcomes = []
        for _ in range(200 // 16 + (seed < 200 % 16)):
            which = rng.randrange(len(images))
            status, answers = predict(server.port, images[which], top_k=3, connection=conn)
            outcomes.append((which, status, answers))
        conn.close()
        return outcomes

    with ThreadPoolExecutor(16) as pool:
        outcomes = [o for result in pool.map(client, range(16)) for o in result]
    assert len(outcomes) == 200
    for which, status, answers in outcomes:
        assert status == 200
        same_answer(answers[0], expected[which])
    stats = json.loads(request(server.port, "GET", "/metadata")[2])["stats"]
    assert stats["images"] > stats["batches"]  # some requests shared a batch
    lines = [l for l in server.lines if " POST /predict 200 " in l]
    assert all(re.search(r"POST /predict 200 [\d.]+ ms batch \d+$", l) for l in lines)


@pytest.mark.skipif(find_chromium() is None, reason="no headless Chromium (apt-get install -y chromium)")
def test_the_page_in_headless_chromium_shows_the_class_of_an_uploaded_image(server, run, expected):
    browser = Browser(find_chromium())
    try:
        browser.open(f"http://127.0.0.1:{server.port}/")
        assert "lenet" in browser.wait_for("document.getElementById('meta').textContent.includes('classes') && "
                                           "document.getElementById('meta').textContent")
        browser.set_files("#pick", [run[1][2]])
        shown = browser.wait_for("(() => { const r = document.querySelector('.result');"
                                 " return r && (r.dataset.className || r.dataset.error); })()")
        assert shown == expected[2]["class_name"]
        rows = browser.evaluate("[...document.querySelectorAll('.result tr')].map(r => r.innerText)")
        assert len(rows) == 5 and rows[0].startswith(expected[2]["class_name"])
        assert f"{100 * expected[2]['probability']:.1f} %" in rows[0]
        assert browser.wait_for("document.querySelector('.result img').naturalWidth") == 28  # the image beside them
    finally:
        browser.close()


# Last, so that the tests before it share one server (the fixture starts another for any test after it).
def test_sigterm_under_load_answers_every_accepted_request_and_exits_0(server, run, expected):
    srv = server
    before = json.loads(request(srv.port, "GET", "/metadata")[2])["stats"]
    images = [p.read_bytes() for p in run[1]]
    received, stop = [], threading.Event()

    def client(seed):
        while not stop.is_set():
            which = seed % len(images)
            try:
                status, answers = predict(srv.port, images[which], top_k=3)
            except (OSError, http.client.HTTPException):  # refused once the server stopped listening
                return
            received.append((which, status, answers))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    started = time.monotonic()
    code = srv.stop()
    stop.set()
    for thread in threads:
        thread.join(10)
    assert code == 0 and time.monotonic() - started < 10
    summary = re.search(r"stopped on SIGTERM: of (\d+) accepted requests, (\d+) answered and (\d+) abandoned", srv.lines[-1])
    assert summary, srv.lines[-3:]
    accepted, answered, abandoned = (int(v) for v in summary.groups())
    assert accepted == answered + abandoned and abandoned == before["abandoned"]
    assert answered - before["answered"] == len(received) > 0
    for which, status, answers in received:
        assert status == 200
        same_answer(answers[0], expected[which])
