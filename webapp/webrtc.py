"""The browser's webcam drives the avatar over WebRTC (aiortc): the page sends its camera as a
video track and gets the avatar back as one, with the command line's own loop
(live/drive.drive, pipelined) in between, so the page runs at the command line's rate.

The page (webapp/live_page.js) makes the offer and the server answers (``LiveSessions``); ICE
uses host candidates only, unless the app was given servers (``python app.py --ice-server``):
no STUN or TURN server is asked on these offline and LAN machines. A data channel carries the
page's controls (recalibrate, side by side, steady landmarks) one way and the server's numbers
(frames per second, latency from a camera frame's arrival to its avatar sent, face found) the
other. Closing the page or Stop ends the session; so does a failed connection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import queue
import threading
import time
from fractions import Fraction

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from dataset.video import VideoReadError
from live.drive import Driver, drive
from live.sources import Frame
from utils.files import describe_os_error

STATS_EVERY = 0.5  # seconds between the numbers sent to the page
NOTE_SECONDS = 3.0  # how long a note (recalibrated) stays in the page's line
LATENCY_FRAMES = 60  # the latency shown is the median over this many frames
CLOCK = Fraction(1, 90000)  # RTP's video clock
_END = object()


class BrowserCamera:
    """The frames of the page's camera track, as live/sources.FrameSource gives a webcam's:
    stamped with their arrival (seconds since the session began), only the newest kept (a slow
    avatar drops camera frames rather than falling behind), decoded to RGB by the reader."""

    live, name, file = True, "the browser's camera", None

    def __init__(self, fps: float = 30.0) -> None:
        self.fps, self.unreadable = fps, []
        self.start = time.perf_counter()
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._index = 0

    def put(self, frame: av.VideoFrame) -> None:
        """A frame from the track (any thread); an older unread one is dropped."""
        with contextlib.suppress(queue.Empty):
            self._queue.get_nowait()
        self._queue.put((frame, time.perf_counter() - self.start))

    def close(self) -> None:
        """The track ended: the reader stops after the frame it has."""
        with contextlib.suppress(queue.Empty):
            self._queue.get_nowait()
        self._queue.put(_END)

    def __iter__(self):
        while True:
            try:  # short waits: the reader notices a closed session in time
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is _END:
                return
            start = time.perf_counter()
            image = item[0].to_ndarray(format="rgb24")
            self._index += 1
            yield Frame(image, self._index - 1, (time.perf_counter() - start) * 1e3, item[1])


class AvatarTrack(MediaStreamTrack):
    """The avatar as a video track: a sink of live/drive.drive (any thread) whose newest frame
    the encoder takes; latencies: seconds from a camera frame's arrival to its avatar here."""

    kind = "video"

    def __init__(self, loop: asyncio.AbstractEventLoop, camera: BrowserCamera) -> None:
        super().__init__()
        self._loop, self._camera = loop, camera
        self._frames: asyncio.Queue = asyncio.Queue(maxsize=1)
        self.latencies: collections.deque = collections.deque(maxlen=LATENCY_FRAMES)

    def write(self, image: np.ndarray, time_s: float) -> None:
        self.latencies.append(time.perf_counter() - self._camera.start - time_s)
        self._loop.call_soon_threadsafe(self._newest, image)

    def close(self) -> None:
        pass  # the session ends the track

    def _newest(self, image: np.ndarray) -> None:
        with contextlib.suppress(asyncio.QueueEmpty):
            self._frames.get_nowait()
        self._frames.put_nowait(image)

    async def recv(self) -> av.VideoFrame:
        image = await self._frames.get()
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = round((time.perf_counter() - self._camera.start) / CLOCK)
        frame.time_base = CLOCK
        return frame


class PageControls:
    """The page in drive()'s window role: its controls come over the data channel as actions
    (recalibrate; side by side and steady landmarks as the page's boxes say), and the numbers go
    back to it."""

    def __init__(
        self,
        driver: Driver,
        avatar: AvatarTrack,
        side_by_side: bool,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.driver, self.avatar, self.side, self._loop = driver, avatar, side_by_side, loop
        self.channel = None  # the data channel, once the page has opened it
        self._actions: collections.deque = collections.deque()
        self._sent, self._note, self._noted = 0.0, "", 0.0

    def receive(self, message: str) -> None:
        """A control from the page (JSON): {"action": "recalibrate"}, {"side": bool},
        {"steady": bool}."""
        control = json.loads(message)
        if control.get("action") == "recalibrate":
            self._actions.append("recalibrate")
        if "side" in control and bool(control["side"]) != self.side:
            self.side = bool(control["side"])
            self._actions.append("side")
        if "steady" in control:
            self.driver.landmark_filter.enabled = bool(control["steady"])

    def write(self, image: np.ndarray, fps: float, face: bool) -> str | None:
        action = self._actions.popleft() if self._actions else None
        now = time.perf_counter()
        if action == "recalibrate":
            self._note = "recalibrated: the current face is the neutral one"
            self._noted = now
        if now - self._noted > NOTE_SECONDS:
            self._note = ""
        if self.channel is not None and now - self._sent >= STATS_EVERY:
            self._sent = now
            latencies = 1e3 * np.array(self.avatar.latencies)
            stats = {
                "latency": float(np.median(latencies)),
                "latency_p95": float(np.percentile(latencies, 95)),
                "face": face,
                "note": self._note,
            }
            self._loop.call_soon_threadsafe(self._send, json.dumps(stats))
        return action

    def say_error(self, text: str) -> None:
        """An error that ended the session, for the page's line (any thread)."""
        self._loop.call_soon_threadsafe(self._send, json.dumps({"error": text}))

    def _send(self, text: str) -> None:
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(text)


class LiveSessions:
    """The page's live sessions: each a peer connection and a driving thread."""

    def __init__(self, ice_servers: list[str]) -> None:
        self.ice_servers = list(ice_servers)
        self._connections: set[RTCPeerConnection] = set()
        self._readers: set[asyncio.Task] = set()

    async def answer(self, offer: str, driver: Driver, side_by_side: bool) -> str:
        """The answer (SDP) to the page's offer; the avatar is driven from the page's camera
        once its track arrives. Raises ValueError for an offer that is not an SDP offer."""
        loop = asyncio.get_running_loop()
        connection = RTCPeerConnection(self.configuration())
        self._connections.add(connection)
        camera = BrowserCamera()
        avatar = AvatarTrack(loop, camera)
        controls = PageControls(driver, avatar, side_by_side, loop)

        @connection.on("datachannel")
        def opened(channel) -> None:
            controls.channel = channel
            channel.on("message", controls.receive)

        @connection.on("track")
        def arrived(track) -> None:
            if track.kind == "video":
                reader = loop.create_task(_read(track, camera))
                self._readers.add(reader)  # held until done: the loop keeps weak references
                reader.add_done_callback(self._readers.discard)

        @connection.on("connectionstatechange")
        async def changed() -> None:
            if connection.connectionState in ("failed", "closed"):
                camera.close()
                await self.close(connection)

        try:
            await connection.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            connection.addTrack(avatar)
            await connection.setLocalDescription(await connection.createAnswer())
        except BaseException:
            await self.close(connection)
            raise
        threading.Thread(
            target=_drive,
            args=(camera, driver, avatar, controls, side_by_side, loop, self, connection),
            name="live session",
            daemon=True,
        ).start()
        return connection.localDescription.sdp

    def configuration(self) -> RTCConfiguration:
        """The given ICE servers, or none: an empty list, which aiortc takes as no server (its
        default, for None, is Google's STUN server, out of reach offline)."""
        return RTCConfiguration(iceServers=[RTCIceServer(url) for url in self.ice_servers])

    async def close(self, connection: RTCPeerConnection) -> None:
        if connection in self._connections:
            self._connections.discard(connection)
            await connection.close()

    @property
    def open(self) -> int:
        return len(self._connections)


async def _read(track, camera: BrowserCamera) -> None:
    try:
        while True:
            camera.put(await track.recv())
    except MediaStreamError:
        camera.close()


def _drive(camera, driver, avatar, controls, side_by_side, loop, sessions, connection) -> None:
    """The command line's loop for one session, until the page's camera ends. An error ends
    the session and is said in the page (and logged here)."""
    try:
        drive(camera, driver, [avatar], controls, side_by_side)
    except VideoReadError:
        pass  # the page left before its first frame
    except Exception as error:
        logging.getLogger(__name__).exception("the live session failed")
        controls.say_error(describe_os_error(error))
    finally:
        camera.close()
        asyncio.run_coroutine_threadsafe(sessions.close(connection), loop)
