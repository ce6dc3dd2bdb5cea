"""Generated gRPC stubs of ``stratarouter.proto`` (package ``stratarouter.v1``).

Do not edit the ``stratarouter_pb2*`` modules: change the .proto and run ``make grpc-stubs``;
``runtime/tests/server/test_grpc_stubs.py`` fails when they are not current.
"""
