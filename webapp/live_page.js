// The Drive tab's live path in the page (webapp/webrtc.py is the server's side): the webcam
// goes to the server as a WebRTC video track, the avatar comes back as one into #live-video,
// and #live-fps shows the frames per second the page shows (counted as they are presented)
// with the server's latency from a camera frame's arrival to its avatar sent.
window.talkingHeadsLive = (() => {
  let connection = null;
  let channel = null;
  let camera = null;
  let shown = [];  // presentation times (ms) of the frames of the last two seconds
  let server = {};  // the server's latest numbers

  const line = (text) => {
    const element = document.getElementById("live-fps");
    if (element) element.textContent = text;
  };

  const describe = () => {
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

  const count = (video) => {
    const next = () => video.requestVideoFrameCallback((now) => {
      shown.push(now);
      next();
    });
    next();
  };

  const gathered = (peer) => new Promise((resolve) => {
    if (peer.iceGatheringState === "complete") return resolve();
    peer.addEventListener("icegatheringstatechange", () => {
      if (peer.iceGatheringState === "complete") resolve();
    });
  });

  const stop = () => {
    if (channel) channel.close();
    if (connection) connection.close();
    if (camera) camera.getTracks().forEach((track) => track.stop());
    connection = channel = camera = null;
    server = {};
  };

  // The offer (SDP) for the server, with every ICE candidate in it; iceServers: [] unless the
  // app was given servers. "" when the camera cannot be had (the line says why).
  const start = async (iceServers) => {
    stop();
    try {
      camera = await navigator.mediaDevices.getUserMedia({
        video: {width: {ideal: 640}, height: {ideal: 480}}, audio: false,
      });
    } catch (error) {
      line(`the camera cannot be used: ${error.message} (allow it for this page)`);
      return "";
    }
    connection = new RTCPeerConnection({iceServers: iceServers.map((urls) => ({urls}))});
    camera.getTracks().forEach((track) => connection.addTrack(track, camera));
    channel = connection.createDataChannel("controls");
    channel.onmessage = (event) => {
      server = JSON.parse(event.data);
      describe();
    };
    connection.ontrack = (event) => {
      const video = document.getElementById("live-video");
      video.srcObject = new MediaStream([event.track]);
      video.play().catch(() => {});
      shown = [];
      count(video);
    };
    connection.onconnectionstatechange = () => {
      if (connection && connection.connectionState === "failed") {
        line("the connection to the server failed (a firewall, or a VPN in the way?)");
      }
    };
    await connection.setLocalDescription(await connection.createOffer());
    await gathered(connection);
    line("connecting...");
    return connection.localDescription.sdp;
  };

  const answer = async (sdp) => {
    if (!sdp) return stop();
    if (connection) await connection.setRemoteDescription({type: "answer", sdp});
  };

  const send = (control) => {
    if (channel && channel.readyState === "open") channel.send(JSON.stringify(control));
  };

  setInterval(() => { if (connection) describe(); }, 1000);
  return {start, answer, send, stop};
})();
