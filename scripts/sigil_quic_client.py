"""A sigil/1 client in Python (aioquic + cbor2), written from docs/protocol.md
alone: the proof that the QUIC API is usable from another language.

Usage: sigil_quic_client.py INPUT.json
INPUT: {"target": "127.0.0.1:4433", "server_name": "localhost",
        "ca": "ca.pem", "cert": "cert.pem" | null, "key": "key.pem" | null,
        "requests": [{"op": "health"}, {"op": "id_token", ...}, ...],
        "raw_frames_hex": ["..."]   # optional: frames sent as-is after the requests
       }
Prints: {"answers": [<answer map per request, in request order; null when
                     the stream closed before its answer>],
         "raw_answers": [<answers with other ids: to the raw frames>],
         "closed": <the answer with id 0, or null>,
         "after_close": [<answers that came after it: the spec says none>]}
All requests are pipelined on one stream with ids 1..n; answers may come in
any order and are matched by id. The answer with id 0 closes the stream:
every request not answered by then was not carried out.
"""
import asyncio
import json
import ssl
import struct
import sys

import cbor2
from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import StreamDataReceived, StreamReset

MAX_FRAME = 65536


class SigilProtocol(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.buffers = {}
        self.answers = asyncio.Queue()

    def quic_event_received(self, event):
        if isinstance(event, StreamDataReceived):
            buf = self.buffers.setdefault(event.stream_id, bytearray())
            buf.extend(event.data)
            while len(buf) >= 4:
                (length,) = struct.unpack(">I", buf[:4])
                if length == 0 or length > MAX_FRAME:
                    raise ValueError(f"node sent a bad frame length {length}")
                if len(buf) < 4 + length:
                    break
                body = bytes(buf[4 : 4 + length])
                del buf[: 4 + length]
                self.answers.put_nowait(cbor2.loads(body))
            if event.end_stream:
                self.answers.put_nowait(None)
        elif isinstance(event, StreamReset):
            self.answers.put_nowait(None)


def frame(message):
    body = cbor2.dumps(message)
    return struct.pack(">I", len(body)) + body


def jsonable(value):
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


async def run(spec):
    host, port = spec["target"].rsplit(":", 1)
    configuration = QuicConfiguration(is_client=True, alpn_protocols=["sigil/1"])
    configuration.verify_mode = ssl.CERT_REQUIRED
    configuration.load_verify_locations(spec["ca"])
    configuration.server_name = spec.get("server_name", "localhost")
    if spec.get("cert"):
        configuration.load_cert_chain(spec["cert"], spec["key"])
    async with connect(host, int(port), configuration=configuration, create_protocol=SigilProtocol) as client:
        stream = client._quic.get_next_available_stream_id(is_unidirectional=False)
        requests = spec.get("requests", [])
        wire = bytearray()
        for i, request in enumerate(requests, start=1):
            wire += frame(dict(request, id=i))
        for raw in spec.get("raw_frames_hex", []):
            wire += bytes.fromhex(raw)
        client._quic.send_stream_data(stream, bytes(wire), end_stream=True)
        client.transmit()
        by_id, raw_answers, closed, after_close = {}, [], None, []
        while True:
            answer = await asyncio.wait_for(client.answers.get(), timeout=20)
            if answer is None:  # the node finished its side
                break
            if closed is not None:
                after_close.append(answer)
            elif answer.get("id") == 0:
                closed = answer
            elif 1 <= answer.get("id", 0) <= len(requests):
                by_id[answer["id"]] = answer
            else:
                raw_answers.append(answer)
        return {
            "answers": [jsonable(by_id.get(i)) for i in range(1, len(requests) + 1)],
            "raw_answers": jsonable(raw_answers),
            "closed": jsonable(closed),
            "after_close": jsonable(after_close),
        }


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    print(json.dumps(asyncio.run(run(spec))))


if __name__ == "__main__":
    main()
