"""The live webcam's server side (webapp/webrtc.py) with an aiortc client in the page's place:
host candidates only without a given ICE server, the avatar's frames come back, the page's
controls reach the driver, and a closed page ends its session."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import numpy as np
import pytest
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.rtcicetransport import RTCIceGatherer
from av import VideoFrame
from synthetic_videos import still_frame

from dataset.face import CropSettings
from dataset.stabilizer import StabilizerSettings
from dataset.synthetic import face_pictures
from live.drive import Driver
from params.config import PARAMS_DIR, load_config
from webapp.webrtc import LiveSessions


class StillCamera(VideoStreamTrack):
    """The page's camera: one still face, at 30 frames/s."""

    def __init__(self, image: np.ndarray) -> None:
        super().__init__()
        self.image = image

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame.from_ndarray(self.image, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class StillDetector:
    track_id = 1

    def __init__(self, points: np.ndarray) -> None:
        self.points = points

    def track(self, image: np.ndarray) -> np.ndarray:
        return self.points


def a_driver() -> Driver:
    """A driver of the tiny config whose 'generator' returns the landmark picture (64 px)."""
    config = load_config(PARAMS_DIR / "tiny.yaml")
    _, points = still_frame(face_pictures()["grace_hopper"], 256)
    settings = CropSettings.from_config(config)
    person = type("Person", (), {"crop_settings": settings, "landmarks": points[None]})()
    stabilizer = StabilizerSettings.from_config(config)
    return Driver(person, StillDetector(points), lambda p: p, "absolute", 30.0, stabilizer)


async def until(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def a_session(driver: Driver) -> dict:
    still, _ = still_frame(face_pictures()["grace_hopper"], 256)
    page = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    page.addTrack(StillCamera(np.ascontiguousarray(still[:, :, :3])))
    channel = page.createDataChannel("controls")
    seen = {"sizes": [], "stats": []}
    channel.on("message", lambda text: seen["stats"].append(json.loads(text)))

    @page.on("track")
    def arrived(track) -> None:
        async def read() -> None:
            while True:
                frame = await track.recv()
                seen["sizes"].append((frame.width, frame.height))

        seen["reader"] = asyncio.ensure_future(read())

    await page.setLocalDescription(await page.createOffer())
    sessions = LiveSessions([])
    answer = await sessions.answer(page.localDescription.sdp, driver, False)
    seen["answer"] = answer
    await page.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await until(lambda: len(seen["sizes"]) >= 10 and seen["stats"])
    assert set(seen["sizes"]) == {(64, 64)}
    channel.send(json.dumps({"side": True, "steady": False}))
    await until(lambda: seen["sizes"][-1] == (3 * 64, 64))  # driver | landmarks | avatar
    assert not driver.landmark_filter.enabled
    channel.send(json.dumps({"action": "recalibrate"}))
    await until(lambda: "recalibrated" in seen["stats"][-1]["note"])
    await page.close()
    seen["reader"].cancel()
    await until(lambda: sessions.open == 0)
    await until(lambda: not [t for t in threading.enumerate() if t.name == "live session"])
    return seen


def test_the_page_gets_the_avatar_and_its_controls_reach_the_driver(monkeypatch):
    """No STUN server is asked when none is given (aiortc's default is Google's): gathering
    would fail here. The answer offers host candidates only."""

    def no_default_servers(self):
        raise AssertionError("aiortc's default STUN server was asked for")

    monkeypatch.setattr(RTCIceGatherer, "getDefaultIceServers", no_default_servers)
    seen = asyncio.run(a_session(a_driver()))
    candidates = [line for line in seen["answer"].splitlines() if line.startswith("a=candidate")]
    assert candidates and all(" typ host" in line for line in candidates)
    latest = seen["stats"][-1]
    assert latest["face"] and 0 <= latest["latency"] <= latest["latency_p95"] < 5000


def test_a_given_ice_server_is_used():
    sessions = LiveSessions(["stun:192.0.2.1:3478"])
    assert sessions.configuration().iceServers[0].urls == "stun:192.0.2.1:3478"
    assert LiveSessions([]).configuration().iceServers == []


@pytest.fixture(autouse=True)
def _no_leftover_sessions():
    yield
    assert not [t for t in threading.enumerate() if t.name == "live session"]


def test_an_error_while_driving_is_said_in_the_page_and_ends_the_session():
    """A generator that fails mid-session: the page gets the error line over the data channel
    and the server closes the connection (before, the avatar froze with the session open)."""

    async def session() -> tuple[list, LiveSessions]:
        still, _ = still_frame(face_pictures()["grace_hopper"], 256)
        driver = a_driver()
        calls = []

        def failing(picture):
            calls.append(1)
            if len(calls) > 8:
                raise RuntimeError("the generator failed")
            return picture

        driver.renderer = failing
        page = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        page.addTrack(StillCamera(np.ascontiguousarray(still[:, :, :3])))
        channel = page.createDataChannel("controls")
        said = []
        channel.on("message", lambda text: said.append(json.loads(text)))
        await page.setLocalDescription(await page.createOffer())
        sessions = LiveSessions([])
        answer = await sessions.answer(page.localDescription.sdp, driver, False)
        await page.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await until(lambda: any("error" in message for message in said))
        await until(lambda: sessions.open == 0)
        await page.close()
        return said, sessions

    said, _ = asyncio.run(session())
    assert [m["error"] for m in said if "error" in m] == ["the generator failed"]
