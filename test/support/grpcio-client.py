"""A second gRPC client (Python grpcio) for test/grpc: calls the echo service of grpcapp.ts
through arr and prints what it got as one JSON line.

usage: grpcio-client.py ADDRESS AUTHORITY [tls CERT_FILE]
"""
import json
import sys

import grpc

address, authority = sys.argv[1], sys.argv[2]
options = [("grpc.default_authority", authority)]
if len(sys.argv) > 3 and sys.argv[3] == "tls":
    with open(sys.argv[4], "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    options.append(("grpc.ssl_target_name_override", authority))
    channel = grpc.secure_channel(address, creds, options)
else:
    channel = grpc.insecure_channel(address, options)

out = {}
unary = channel.unary_unary("/test.Echo/Unary")
reply, call = unary.with_call(b"from python", timeout=10)
out["unary"] = reply.decode()
out["trailers"] = {k: v for k, v in call.trailing_metadata()}
try:
    unary(b"status:5:missing", timeout=10)
except grpc.RpcError as e:
    out["status"] = [e.code().value[0], e.details(), dict(e.trailing_metadata())]
stream = channel.unary_stream("/test.Echo/ServerStream")
out["serverStream"] = [len(m) for m in stream(b"5:100", timeout=10)]
bidi = channel.stream_stream("/test.Echo/Bidi")
out["bidi"] = [m.decode() for m in bidi(iter([b"a", b"b", b"c"]), timeout=10)]
try:
    unary(b"hang:py", timeout=0.3)
except grpc.RpcError as e:
    out["deadline"] = e.code().value[0]
channel.close()
print(json.dumps(out))
