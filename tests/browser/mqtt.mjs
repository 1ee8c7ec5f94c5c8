// A minimal MQTT 3.1.1 publisher over TCP (CONNECT, QoS 0 PUBLISH, PINGREQ, DISCONNECT),
// enough for the browser test and the sensor-to-screen benchmark to publish a reading
// without another npm package. `publish` returns once the bytes are handed to the socket.
import net from "node:net";

const varint = (n) => { const out = []; do { let b = n % 128; n = Math.floor(n / 128); if (n > 0) b |= 128; out.push(b); } while (n > 0); return Buffer.from(out); };
const str = (s) => { const b = Buffer.from(s); return Buffer.concat([Buffer.from([b.length >> 8, b.length & 255]), b]); };
const packet = (type, body) => Buffer.concat([Buffer.from([type]), varint(body.length), body]);

export async function mqttConnect(port, clientId, host = "127.0.0.1") {
  const socket = net.connect(Number(port), host);
  socket.setNoDelay(true);
  await new Promise((ok, fail) => { socket.once("connect", ok); socket.once("error", fail); });
  const connack = new Promise((ok, fail) => {
    socket.once("data", (d) => (d[0] === 0x20 && d[3] === 0 ? ok() : fail(new Error(`MQTT CONNACK ${d.toString("hex")}`))));
  });
  socket.write(packet(0x10, Buffer.concat([str("MQTT"), Buffer.from([4, 0x02, 0, 60]), str(clientId)])));
  await connack;
  const ping = setInterval(() => socket.write(Buffer.from([0xc0, 0])), 30000);
  return {
    publish: (topic, payload) => socket.write(packet(0x30, Buffer.concat([str(topic), Buffer.from(payload)]))),
    close: () => { clearInterval(ping); socket.end(Buffer.from([0xe0, 0])); },
  };
}
