// The Drive tab's live path in the page (webapp/webrtc.py is the server's side): the webcam
// goes to the server as a WebRTC video track, the avatar comes back as one into #live-video,
// and #live-fps shows the frames per second the page shows (counted as they are presented)
// with the server's latency from a camera frame's arrival to its avatar sent.
window.talkingHeadsLive = (() => {
  const GATHER_MS = 5000;  // ICE gathering past this (an unreachable server) goes on without it
  let session = 0;  // each start and stop begins a new one: a pending start then gives up
  let connection = null;
  let channel = null;
  let camera = null;
  let counting = null;  // [video, requestVideoFrameCallback handle]
  let shown = [];  // presentation times (ms) of the frames of the last two seconds
  let server = {};  // the server's latest numbers

  const line = (text) => {
    const element = document.getElementById("live-fps");
    if (element) element.textContent = text;
  };

  const describe = () => {
    if (server.error) return line(`error: ${server.error}`);
    const now = performance.now();
    shown = shown.filter((t) => now - t <= 2000);
    const span = shown.length > 1 ? (shown[shown.length - 1] - shown[0]) / 1000 : 0;
    const fps = span > 0 ? (shown.length - 1) / span : 0;
    let text = `${fps.toFixed(1)} frames/s in the browser`;
    if (server.latency !== undefined) {
      text += `; ${Math.round(server.latency)} ms from a camera frame's arrival to its avatar`;
      text += ` (p95 ${Math.round(server.latency_p95)} ms)`;
    }
    if (server.face === false) text += "; no face: the avatar holds its last frame";
    if (server.note) text += `; ${server.note}`;
    line(text);
  };

  const stopCounting = () => {
    if (counting) counting[0].cancelVideoFrameCallback(counting[1]);
    counting = null;
    shown = [];
  };

  const count = (video) => {
    stopCounting();
    const next = () => {
      counting = [video, video.requestVideoFrameCallback((now) => {
        shown.push(now);
        next();
      })];
    };
    next();
  };

  const gathered = (peer) => new Promise((resolve) => {
    if (peer.iceGatheringState === "complete") return resolve();
    setTimeout(resolve, GATHER_MS);
    peer.addEventListener("icegatheringstatechange", () => {
      if (peer.iceGatheringState === "complete") resolve();
    });
  });

  const checked = (id) => {
    const box = document.querySelector(`#${id} input[type=checkbox]`);
    return box ? box.checked : undefined;
  };

  // said: the line's text afterwards ("" keeps it).
  const stop = (said = "") => {
    session += 1;
    if (channel) channel.close();
    if (connection) connection.close();
    if (camera) camera.getTracks().forEach((track) => track.stop());
    connection = channel = camera = null;
    server = {};
    stopCounting();
    const video = document.getElementById("live-video");
    if (video) video.srcObject = null;
    if (said) line(said);
  };

  // The offer (SDP) for the server, with every ICE candidate in it; iceServers: [] unless the
  // app was given servers. "" when the camera cannot be had (the line says why) or when Stop
  // or another Start came meanwhile.
  const start = async (iceServers) => {
    stop();
    const mine = session;
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: {width: {ideal: 640}, height: {ideal: 480}}, audio: false,
      });
    } catch (error) {
      if (mine === session) line(`the camera cannot be used: ${error.message} (allow it for this page)`);
      return "";
    }
    if (mine !== session) {
      stream.getTracks().forEach((track) => track.stop());
      return "";
    }
    camera = stream;
    const peer = new RTCPeerConnection({iceServers: iceServers.map((urls) => ({urls}))});
    connection = peer;
    stream.getTracks().forEach((track) => peer.addTrack(track, stream));
    channel = peer.createDataChannel("controls");
    channel.onopen = () => send({side: checked("live-side"), steady: checked("live-steady")});
    channel.onmessage = (event) => {
      server = JSON.parse(event.data);
      describe();
    };
    peer.ontrack = (event) => {
      const video = document.getElementById("live-video");
      video.srcObject = new MediaStream([event.track]);
      video.play().catch(() => {});
      count(video);
    };
    peer.onconnectionstatechange = () => {
      if (connection === peer && peer.connectionState === "failed") {
        line("the connection to the server failed (a firewall, or a VPN in the way?)");
      }
    };
    await peer.setLocalDescription(await peer.createOffer());
    await gathered(peer);
    if (mine !== session) return "";
    line("connecting...");
    return peer.localDescription.sdp;
  };

  const answer = async (sdp) => {
    if (!sdp) return stop();
    try {
      if (connection) await connection.setRemoteDescription({type: "answer", sdp});
    } catch (error) {
      stop();
      line(`the server's answer could not be used: ${error.message}`);
    }
  };

  const send = (control) => {
    if (channel && channel.readyState === "open") channel.send(JSON.stringify(control));
  };

  setInterval(() => { if (connection) describe(); }, 1000);
  return {start, answer, send, stop};
})();
