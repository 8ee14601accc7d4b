"""Local fakes of the services the connectors talk to (GitHub REST, Linear GraphQL, an OpenClaw gateway).

Each serves realistic response shapes on 127.0.0.1 (a free port) from a thread of the test process, lets
the test inject faults, and records what it received. Start with ``with FakeX() as fake: fake.url``.
"""
