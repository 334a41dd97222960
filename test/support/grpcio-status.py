"""Python grpcio's view of arr's refusals, for test/grpc: one unary call to the echo service of
grpcapp.ts per authority (each a channel of its own) through ADDRESS, without credentials, and
the status each got, as one JSON line {authority: [code, details]}.

usage: grpcio-status.py ADDRESS AUTHORITY...
"""
import json
import sys

import grpc

address = sys.argv[1]
out = {}
for authority in sys.argv[2:]:
    channel = grpc.insecure_channel(address, [("grpc.default_authority", authority)])
    try:
        channel.unary_unary("/test.Echo/Unary")(b"from python", timeout=10)
        out[authority] = [0, ""]
    except grpc.RpcError as e:
        out[authority] = [e.code().value[0], e.details()]
    channel.close()
print(json.dumps(out))
